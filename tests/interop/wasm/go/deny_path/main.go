// Answers 403 itself for request paths that start with the configured
// prefix (read as the `request.path` property), with a header and a body
// (the Go twin of ../../deny_path/index.ts).
package main

import (
	"strings"

	"baton-wasm-go-plugins/common"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func init() {
	proxywasm.SetPluginContext(func(uint32) types.PluginContext { return &plugin{} })
}

// A WASI reactor: the host calls _initialize, which runs init; main never runs.
func main() {}

type plugin struct {
	types.DefaultPluginContext
	prefix string
}

func (p *plugin) OnPluginStart(size int) types.OnPluginStartStatus {
	if size == 0 {
		proxywasm.LogError("deny_path needs a path prefix as its configuration")
		return types.OnPluginStartStatusFailed
	}
	return common.ReadConfiguration(size, &p.prefix)
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{prefix: p.prefix} }

type stream struct {
	types.DefaultHttpContext
	prefix string
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	path, err := proxywasm.GetProperty([]string{"request", "path"})
	if err != nil {
		proxywasm.LogErrorf("request.path: %v", err)
		return types.ActionContinue
	}
	if !strings.HasPrefix(string(path), s.prefix) {
		return types.ActionContinue
	}
	headers := [][2]string{{"x-denied-by", "wasm"}}
	if err := proxywasm.SendHttpResponse(403, headers, []byte("denied: "+string(path)), -1); err != nil {
		proxywasm.LogErrorf("local response: %v", err)
	}
	return types.ActionPause
}
