// Panics (Go's runtime prints the panic to stderr and calls proc_exit, a
// trap) on a request that carries `x-trap`; adds `x-alive: 1` to the
// others (the Go twin of ../../trap/index.ts).
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

func (*stream) OnHttpRequestHeaders(int, bool) types.Action {
	if trap, _ := proxywasm.GetHttpRequestHeader("x-trap"); trap != "" {
		panic("asked to trap")
	}
	if err := proxywasm.AddHttpRequestHeader("x-alive", "1"); err != nil {
		proxywasm.LogErrorf("add x-alive: %v", err)
	}
	return types.ActionContinue
}
