// A TarsGo (v1.4.5) client of Echo.tars, for baton's interop test
// (tests/tests/interop_tars.rs), driven by JSON lines on stdin:
//
//	{"op":"invoke","tag":T,"func":"echo"|"slowEcho","args":[[v],[v,ms],…],"context":{k:v}}
//	{"op":"invoke","tag":T,"func":"note","args":[[v],…]}      (oneway)
//	{"op":"sockets","tag":T}
//
// Every call of one invoke runs at once, on the client's one connection;
// the answer is one line {"tag":T,"results":[{"ok":true,"value":V} |
// {"ok":false,"error":E,"code":C}, …]} in call order (a oneway call is ok once
// sent); "context", if given, goes in every call's RequestPacket.context.
// "sockets" answers {"tag":T,"sockets":[{"local":PORT}, …]}: this
// process's established TCP connections to the server's port, read from
// /proc, so that a test can tell the client never reconnected.
//
// Usage: tars-client '{"address":"127.0.0.1:PORT","timeoutMs":15000}'
// It prints {"event":"ready"} once the proxy is set up, and exits when its
// stdin closes.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"baton-tars-peer/echo"

	"github.com/TarsCloud/TarsGo/tars"
)

const servant = "Baton.EchoServer.EchoObj"

var outMu sync.Mutex

func emit(v interface{}) {
	line, _ := json.Marshal(v)
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

type result struct {
	Ok    bool   `json:"ok"`
	Value string `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
	// The Tars return code of a failed call (tars.GetErrorCode: the
	// server's iRet, or 1 for a client-side error such as its own timeout).
	Code int32 `json:"code,omitempty"`
}

func call(prx *echo.Proxy, fn string, args []json.RawMessage, reqContext map[string]string) result {
	var value string
	var ms int32
	if len(args) < 1 || json.Unmarshal(args[0], &value) != nil {
		return result{Error: "bad arguments"}
	}
	if len(args) > 1 {
		_ = json.Unmarshal(args[1], &ms)
	}
	ctx := context.Background()
	var ret string
	var err error
	switch fn {
	case "echo":
		ret, err = prx.Echo(ctx, value, reqContext)
	case "slowEcho":
		ret, err = prx.SlowEcho(ctx, value, ms, reqContext)
	case "note":
		err = prx.NoteOneWay(ctx, value, reqContext)
	default:
		err = fmt.Errorf("unknown func %q", fn)
	}
	if err != nil {
		return result{Error: err.Error(), Code: tars.GetErrorCode(err)}
	}
	return result{Ok: true, Value: ret}
}

// sockets lists this process's established TCP connections to port.
func sockets(port int) []map[string]int {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	out := []map[string]int{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "01" || !inodes[f[9]] {
				continue
			}
			hexPort := func(addr string) int {
				i := strings.LastIndex(addr, ":")
				p, _ := strconv.ParseInt(addr[i+1:], 16, 32)
				return int(p)
			}
			if hexPort(f[2]) == port {
				out = append(out, map[string]int{"local": hexPort(f[1])})
			}
		}
	}
	return out
}

func main() {
	var args struct {
		Address   string `json:"address"`
		TimeoutMs int    `json:"timeoutMs"`
	}
	if len(os.Args) < 2 || json.Unmarshal([]byte(os.Args[1]), &args) != nil {
		fmt.Fprintln(os.Stderr, `usage: tars-client '{"address":"127.0.0.1:PORT","timeoutMs":15000}'`)
		os.Exit(64)
	}
	host, portText, err := net.SplitHostPort(args.Address)
	port, _ := strconv.Atoi(portText)
	if err != nil || port == 0 {
		fmt.Fprintln(os.Stderr, "bad address", args.Address)
		os.Exit(64)
	}
	if args.TimeoutMs == 0 {
		args.TimeoutMs = 15000
	}
	comm := tars.NewCommunicator()
	prx := new(echo.Proxy)
	comm.StringToProxy(fmt.Sprintf("%s@tcp -h %s -p %d -t 600000", servant, host, port), prx)
	prx.TarsSetTimeout(args.TimeoutMs)
	emit(map[string]string{"event": "ready"})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	for in.Scan() {
		var cmd struct {
			Op   string              `json:"op"`
			Tag  string              `json:"tag"`
			Func string              `json:"func"`
			Args [][]json.RawMessage `json:"args"`
			// Goes in every call's RequestPacket.context.
			Context map[string]string `json:"context"`
		}
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			emit(map[string]string{"fatal": "bad command: " + err.Error()})
			continue
		}
		switch cmd.Op {
		case "invoke":
			go func() {
				results := make([]result, len(cmd.Args))
				var wg sync.WaitGroup
				for i, a := range cmd.Args {
					wg.Add(1)
					go func(i int, a []json.RawMessage) {
						defer wg.Done()
						results[i] = call(prx, cmd.Func, a, cmd.Context)
					}(i, a)
				}
				wg.Wait()
				emit(map[string]interface{}{"tag": cmd.Tag, "results": results})
			}()
		case "sockets":
			emit(map[string]interface{}{"tag": cmd.Tag, "sockets": sockets(port)})
		default:
			emit(map[string]string{"tag": cmd.Tag, "fatal": "unknown op " + cmd.Op})
		}
	}
}
