#!/bin/sh
# Builds every test plugin (tests/tests/filter_wasm.rs loads them) with the
# AssemblyScript SDK pinned in package-lock.json: `npm ci` first.
set -eu
cd "$(dirname "$0")"
for plugin in add_header deny_path upper_body count forever trap; do
  npx asc "$plugin/index.ts" -b "$plugin/filter.wasm" --use abort=abort_proc_exit --optimize
done
