#!/usr/bin/env bash
# Builds the Tars peer (TarsGo v1.4.5, pinned by go.mod and go.sum) into
# bin/: tars-server and tars-client. Go's build cache makes a rerun with
# nothing changed take about a second, so .ci/run runs it every time.
set -euo pipefail
cd "$(dirname "$0")"
# Debian's golang-go, or the Go that this machine image keeps in /usr/local/go.
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
go build -o bin/tars-server ./server
go build -o bin/tars-client ./client
