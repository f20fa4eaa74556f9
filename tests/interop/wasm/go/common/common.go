// Package common is shared by the Go test plugins (as ../common.ts is by
// the AssemblyScript ones).
package common

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// ReadConfiguration sets *into to the plugin's configuration of size
// bytes ("" when size is 0); it fails the start if the host refuses it.
func ReadConfiguration(size int, into *string) types.OnPluginStartStatus {
	if size == 0 {
		*into = ""
		return types.OnPluginStartStatusOK
	}
	config, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		proxywasm.LogErrorf("configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	*into = string(config)
	return types.OnPluginStartStatusOK
}
