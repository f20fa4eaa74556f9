#!/usr/bin/env bash
# Builds the test control plane (go-control-plane v0.14.0, its envoy
# module v1.40.0, pinned by go.mod and go.sum) into bin/xds-control-plane.
# Go's build cache makes a rerun with nothing changed take about a second,
# so .ci/run runs it every time.
set -euo pipefail
cd "$(dirname "$0")"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
go build -o bin/xds-control-plane .
