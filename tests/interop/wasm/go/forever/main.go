// Loops forever on a request that carries `x-loop`; adds `x-alive: 1` to
// the others. The host's per-request fuel must stop the loop (the Go twin
// of ../../forever/index.ts).
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func init() {
	proxywasm.SetHttpContext(func(uint32) types.HttpContext { return &stream{} })
}

// A WASI reactor: the host calls _initialize, which runs init; main never runs.
func main() {}

type stream struct{ types.DefaultHttpContext }

// A global the compiler cannot drop; it wraps after 2^64 turns.
var spins uint64

func (*stream) OnHttpRequestHeaders(int, bool) types.Action {
	if loop, _ := proxywasm.GetHttpRequestHeader("x-loop"); loop != "" {
		for {
			spins++
			if spins == 0 {
				break
			}
		}
	}
	if err := proxywasm.AddHttpRequestHeader("x-alive", "1"); err != nil {
		proxywasm.LogErrorf("add x-alive: %v", err)
	}
	return types.ActionContinue
}
