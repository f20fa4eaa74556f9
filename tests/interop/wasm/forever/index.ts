// Loops forever on a request that carries `x-loop`; adds `x-alive: 1` to
// the others. The host's per-request fuel must stop the loop.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";

let spins: u64 = 0;

class ForeverRoot extends RootContext {
  // No configuration; see ../common.ts for why the SDK's own is not used.
  onConfigure(size: u32): bool {
    return true;
  }
  createContext(context_id: u32): Context {
    return new Forever(context_id, this);
  }
}

class Forever extends Context {
  constructor(context_id: u32, root: ForeverRoot) {
    super(context_id, root);
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    if (stream_context.headers.request.get("x-loop") != "") {
      // A global the optimizer cannot drop; it wraps after 2^64 turns.
      while (true) {
        spins++;
        if (spins == 0) break;
      }
    }
    stream_context.headers.request.add("x-alive", "1");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new ForeverRoot(context_id); }, "forever");
