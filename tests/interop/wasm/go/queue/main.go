// Registers the shared queue "paths" when it starts and enqueues each
// request's path on it; the host calls proxy_on_queue_ready, where the
// plugin dequeues everything and counts the items in the counter
// "dequeued" (so the counter moves only if the host tells the plugin).
package main

import (
	"errors"

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
	queue    uint32
	dequeued proxywasm.MetricCounter
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	queue, err := proxywasm.RegisterSharedQueue("paths")
	if err != nil {
		proxywasm.LogErrorf("register queue: %v", err)
		return types.OnPluginStartStatusFailed
	}
	p.queue = queue
	p.dequeued = proxywasm.DefineCounterMetric("dequeued")
	return types.OnPluginStartStatusOK
}

func (p *plugin) OnQueueReady(queue uint32) {
	if queue != p.queue {
		proxywasm.LogErrorf("told of queue %d, registered %d", queue, p.queue)
		return
	}
	for {
		_, err := proxywasm.DequeueSharedQueue(queue)
		if errors.Is(err, types.ErrorStatusEmpty) {
			return
		}
		if err != nil {
			proxywasm.LogErrorf("dequeue: %v", err)
			return
		}
		p.dequeued.Increment(1)
	}
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{plugin: p} }

type stream struct {
	types.DefaultHttpContext
	plugin *plugin
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	path, err := proxywasm.GetProperty([]string{"request", "path"})
	if err != nil {
		proxywasm.LogErrorf("request.path: %v", err)
	}
	if err := proxywasm.EnqueueSharedQueue(s.plugin.queue, path); err != nil {
		proxywasm.LogErrorf("enqueue: %v", err)
	}
	return types.ActionContinue
}
