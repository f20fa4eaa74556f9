// Throws (the SDK's abort: proc_exit, a trap) on a request that carries
// `x-trap`; adds `x-alive: 1` to the others.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";

class TrapRoot extends RootContext {
  // No configuration; see ../common.ts for why the SDK's own is not used.
  onConfigure(size: u32): bool {
    return true;
  }
  createContext(context_id: u32): Context {
    return new Trap(context_id, this);
  }
}

class Trap extends Context {
  constructor(context_id: u32, root: TrapRoot) {
    super(context_id, root);
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    if (stream_context.headers.request.get("x-trap") != "") {
      throw new Error("asked to trap");
    }
    stream_context.headers.request.add("x-alive", "1");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new TrapRoot(context_id); }, "trap");
