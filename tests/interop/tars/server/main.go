// A TarsGo (v1.4.5) server for Echo.tars, for baton's interop test
// (tests/tests/interop_tars.rs). It serves the servant
// Baton.EchoServer.EchoObj on 127.0.0.1 at a port the kernel picks and
// prints JSON lines on stdout:
//
//	{"event":"listening","port":P}
//	{"event":"request","func":F,"value":V,"remote":"ip:port"}   (before answering)
//	{"event":"released"}
//
// Usage: tars-server '{"name":"a","holdSlow":false}'
//
// echo(v) and slowEcho(v, ms) answer "<name>|Baton.EchoServer.EchoObj|<v>";
// slowEcho waits ms first and, with holdSlow, until a {"op":"release"} line
// arrives on stdin. note(v) is meant to be called oneway. The server exits
// when its stdin closes.
//
// The listening socket is bound here and handed to TarsGo as an inherited
// one (its grace package's LISTEN_FD_INHERIT_<proto>_<addr> variable), so
// the port is known before the server runs and no other process can take
// it in between.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"baton-tars-peer/echo"

	"github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/util/current"
)

const servant = "Baton.EchoServer.EchoObj"

var outMu sync.Mutex

func emit(v map[string]interface{}) {
	line, _ := json.Marshal(v)
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

type impl struct {
	name     string
	holdSlow bool
	released chan struct{}
}

func remote(ctx context.Context) string {
	ip, _ := current.GetClientIPFromContext(ctx)
	port, _ := current.GetClientPortFromContext(ctx)
	return ip + ":" + port
}

func (s *impl) seen(ctx context.Context, fn, value string) {
	emit(map[string]interface{}{"event": "request", "func": fn, "value": value, "remote": remote(ctx)})
}

func (s *impl) Echo(ctx context.Context, value string) (string, error) {
	s.seen(ctx, "echo", value)
	return s.name + "|" + servant + "|" + value, nil
}

func (s *impl) SlowEcho(ctx context.Context, value string, ms int32) (string, error) {
	s.seen(ctx, "slowEcho", value)
	if s.holdSlow {
		<-s.released
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return s.name + "|" + servant + "|" + value, nil
}

func (s *impl) Note(ctx context.Context, value string) error {
	s.seen(ctx, "note", value)
	return nil
}

const config = `<tars>
  <application>
    <server>
      app=Baton
      server=EchoServer
      logpath=%s
      loglevel=ERROR
      <Baton.EchoServer.EchoObjAdapter>
        endpoint=tcp -h 127.0.0.1 -p %d -t 600000
        servant=%s
        protocol=tars
        threads=1
      </Baton.EchoServer.EchoObjAdapter>
    </server>
  </application>
</tars>
`

func main() {
	var args struct {
		Name     string `json:"name"`
		HoldSlow bool   `json:"holdSlow"`
	}
	if len(os.Args) < 2 || json.Unmarshal([]byte(os.Args[1]), &args) != nil || args.Name == "" {
		fmt.Fprintln(os.Stderr, `usage: tars-server '{"name":"a","holdSlow":false}'`)
		os.Exit(64)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	file, err := ln.(*net.TCPListener).File()
	if err != nil {
		fmt.Fprintln(os.Stderr, "listener fd:", err)
		os.Exit(1)
	}
	ln.Close()
	os.Setenv(fmt.Sprintf("LISTEN_FD_INHERIT_tcp_127.0.0.1:%d", port), strconv.Itoa(int(file.Fd())))

	dir, err := os.MkdirTemp("", "tars-server-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "EchoServer.conf")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(config, dir, port, servant)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		os.Exit(1)
	}
	// TarsGo logs under <logpath>/<app>/<server>/.
	if err := os.MkdirAll(filepath.Join(dir, "Baton", "EchoServer"), 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "log dir:", err)
		os.Exit(1)
	}
	tars.ServerConfigPath = path
	// Reads the config (what a tars2go-made main does first).
	tars.GetServerConfig()

	s := &impl{name: args.Name, holdSlow: args.HoldSlow, released: make(chan struct{})}
	tars.AddServantWithContext(echo.Dispatcher{}, s, servant)

	go func() {
		in := bufio.NewScanner(os.Stdin)
		once := sync.Once{}
		for in.Scan() {
			var cmd struct {
				Op string `json:"op"`
			}
			if json.Unmarshal(in.Bytes(), &cmd) == nil && cmd.Op == "release" {
				once.Do(func() { close(s.released) })
				emit(map[string]interface{}{"event": "released"})
			}
		}
		os.RemoveAll(dir)
		os.Exit(0)
	}()

	emit(map[string]interface{}{"event": "listening", "port": port})
	tars.Run()
	_ = file
}
