// Adds `x-wasm: <configuration>` to every request and `x-wasm-seen: 1` to
// every response (the Go twin of ../../add_header/index.ts).
package main

import (
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
	value string
}

func (p *plugin) OnPluginStart(size int) types.OnPluginStartStatus {
	return common.ReadConfiguration(size, &p.value)
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{value: p.value} }

type stream struct {
	types.DefaultHttpContext
	value string
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	if err := proxywasm.AddHttpRequestHeader("x-wasm", s.value); err != nil {
		proxywasm.LogErrorf("add x-wasm: %v", err)
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	if err := proxywasm.AddHttpResponseHeader("x-wasm-seen", "1"); err != nil {
		proxywasm.LogErrorf("add x-wasm-seen: %v", err)
	}
	return types.ActionContinue
}
