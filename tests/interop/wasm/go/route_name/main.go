// Answers what the `route_name` property reads: `x-route-name: [<name>]`
// on responses (or `none` when it is not found), and
// `x-route-name-at-start:` the same as read by the root context when the
// plugin started, outside any request.
package main

import (
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
	atStart string
}

// routeName reads the property: "[name]", or "none" when not found.
func routeName() string {
	name, err := proxywasm.GetProperty([]string{"route_name"})
	if err != nil {
		return "none"
	}
	return "[" + string(name) + "]"
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	p.atStart = routeName()
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{plugin: p} }

type stream struct {
	types.DefaultHttpContext
	plugin *plugin
	name   string
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	s.name = routeName()
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	for _, h := range [][2]string{{"x-route-name", s.name}, {"x-route-name-at-start", s.plugin.atStart}} {
		if err := proxywasm.AddHttpResponseHeader(h[0], h[1]); err != nil {
			proxywasm.LogErrorf("add %s: %v", h[0], err)
		}
	}
	return types.ActionContinue
}
