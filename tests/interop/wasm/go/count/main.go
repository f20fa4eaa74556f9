// Counts requests in a counter, and records each request's path length in
// a histogram; answers `x-count: <n>` on responses (read back with
// proxy_get_metric); counts its ticks (every 10 ms) in another counter
// (the Go twin of ../../count/index.ts).
package main

import (
	"strconv"

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
	requests proxywasm.MetricCounter
	paths    proxywasm.MetricHistogram
	ticks    proxywasm.MetricCounter
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	p.requests = proxywasm.DefineCounterMetric("requests")
	p.paths = proxywasm.DefineHistogramMetric("path_length")
	p.ticks = proxywasm.DefineCounterMetric("ticks")
	if err := proxywasm.SetTickPeriodMilliSeconds(10); err != nil {
		proxywasm.LogErrorf("tick period: %v", err)
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (p *plugin) OnTick() { p.ticks.Increment(1) }

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{plugin: p} }

type stream struct {
	types.DefaultHttpContext
	plugin *plugin
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	s.plugin.requests.Increment(1)
	path, err := proxywasm.GetProperty([]string{"request", "path"})
	if err != nil {
		proxywasm.LogErrorf("request.path: %v", err)
	}
	s.plugin.paths.Record(uint64(len(path)))
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	seen := strconv.FormatUint(s.plugin.requests.Value(), 10)
	if err := proxywasm.AddHttpResponseHeader("x-count", seen); err != nil {
		proxywasm.LogErrorf("add x-count: %v", err)
	}
	return types.ActionContinue
}
