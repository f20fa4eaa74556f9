#!/bin/sh
# Builds every test plugin (tests/tests/filter_wasm.rs loads them).
#
# With the AssemblyScript SDK pinned in package-lock.json (`npm ci` first):
# a plugin is rebuilt when its index.ts, common.ts or the lock file is
# newer than its filter.wasm. The compiler's warnings are about the SDK's
# own code (usize conversions); errors fail the build.
#
# With the proxy-wasm Go SDK pinned in go/go.mod and go/go.sum (fetched
# from the Go module proxy), by plain Go (no TinyGo) as WASI reactors:
# GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared (Go >= 1.24; a Go >= 1.21
# fetches that toolchain itself when GOTOOLCHAIN allows). A plugin is
# rebuilt when its main.go, common/common.go, go.mod or go.sum is newer
# than its filter.wasm; Go's build cache makes a rebuild a few seconds.
set -eu
cd "$(dirname "$0")"
for plugin in add_header deny_path upper_body count forever trap visits; do
  out="$plugin/filter.wasm"
  if [ -f "$out" ] && [ "$out" -nt "$plugin/index.ts" ] && [ "$out" -nt common.ts ] \
    && [ "$out" -nt package-lock.json ]; then
    continue
  fi
  npx asc "$plugin/index.ts" -b "$out" --use abort=abort_proc_exit --optimize 2>"$plugin/asc.log" || {
    cat "$plugin/asc.log" >&2
    exit 1
  }
done
# Debian's golang-go, or the Go that this machine image keeps in /usr/local/go.
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
cd go
for plugin in add_header deny_path upper_body count forever trap route_name queue; do
  out="$plugin/filter.wasm"
  if [ -f "$out" ] && [ "$out" -nt "$plugin/main.go" ] && [ "$out" -nt common/common.go ] \
    && [ "$out" -nt go.mod ] && [ "$out" -nt go.sum ]; then
    continue
  fi
  GOOS=wasip1 GOARCH=wasm GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" \
    go build -buildmode=c-shared -o "$out" "./$plugin"
done
