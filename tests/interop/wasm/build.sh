#!/bin/sh
# Builds every test plugin (tests/tests/filter_wasm.rs loads them) with the
# AssemblyScript SDK pinned in package-lock.json (`npm ci` first): a
# plugin is rebuilt when its index.ts, common.ts or the lock file is newer
# than its filter.wasm. The compiler's warnings are about the SDK's own
# code (usize conversions); errors fail the build.
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
