// Upper-cases response bodies: buffers the body (ActionPause, the ABI's
// StopIterationAndBuffer) until its end, then replaces it whole (the Go
// twin of ../../upper_body/index.ts).
package main

import (
	"bytes"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func init() {
	proxywasm.SetHttpContext(func(uint32) types.HttpContext { return &stream{} })
}

// A WASI reactor: the host calls _initialize, which runs init; main never runs.
func main() {}

type stream struct{ types.DefaultHttpContext }

func (*stream) OnHttpResponseBody(size int, endOfStream bool) types.Action {
	if !endOfStream {
		return types.ActionPause
	}
	if size == 0 {
		return types.ActionContinue
	}
	body, err := proxywasm.GetHttpResponseBody(0, size)
	if err != nil {
		proxywasm.LogErrorf("response body: %v", err)
		return types.ActionContinue
	}
	if err := proxywasm.ReplaceHttpResponseBody(bytes.ToUpper(body)); err != nil {
		proxywasm.LogErrorf("replace response body: %v", err)
	}
	return types.ActionContinue
}
