// Counts visits in the plugins' shared data (key "visits", written with
// its CAS) and answers `x-visits: <n>` on responses: the count a
// generation hands to the next at an upgrade. The SDK 0.1.8 wrappers of
// the shared-data calls pass the wrong arguments, so the plugin declares
// the ABI's own imports.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";

// @ts-ignore: decorator
@external("env", "proxy_get_shared_data")
declare function proxy_get_shared_data(key_ptr: usize, key_size: usize, value_ptr_ptr: usize, value_size_ptr: usize, cas_ptr: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_set_shared_data")
declare function proxy_set_shared_data(key_ptr: usize, key_size: usize, value_ptr: usize, value_size: usize, cas: u32): u32;

const KEY = "visits";

class VisitsRoot extends RootContext {
  onConfigure(size: u32): bool {
    return true;
  }
  createContext(context_id: u32): Context {
    return new Visits(context_id, this);
  }
}

/// One more visit: the count after it (0 if the store refused it).
function visit(): u64 {
  const key = String.UTF8.encode(KEY);
  for (let attempt = 0; attempt < 10; attempt++) {
    // value pointer, value size, cas
    const out = new ArrayBuffer(12);
    const base = changetype<usize>(out);
    let count: u64 = 0;
    let cas: u32 = 0;
    if (proxy_get_shared_data(changetype<usize>(key), key.byteLength, base, base + 4, base + 8) == 0) {
      const text = String.UTF8.decodeUnsafe(load<u32>(base), load<u32>(base + 4));
      count = U64.parseInt(text);
      cas = load<u32>(base + 8);
    }
    const next = String.UTF8.encode((count + 1).toString());
    if (proxy_set_shared_data(changetype<usize>(key), key.byteLength, changetype<usize>(next), next.byteLength, cas) == 0) {
      return count + 1;
    }
  }
  return 0;
}

class Visits extends Context {
  count: u64 = 0;
  constructor(context_id: u32, root: VisitsRoot) {
    super(context_id, root);
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.count = visit();
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-visits", this.count.toString());
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new VisitsRoot(context_id); }, "visits");
