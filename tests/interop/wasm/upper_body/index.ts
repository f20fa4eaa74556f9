// Upper-cases response bodies: buffers the body (StopIterationAndBuffer)
// until its end, then replaces it whole through proxy_set_buffer_bytes,
// which the SDK 0.1.8 does not wrap (its declaration binds the wrong
// import name), so it is declared here.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterDataStatusValues } from "@solo-io/proxy-runtime";
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";

// @ts-ignore: decorator
@external("env", "proxy_set_buffer_bytes")
declare function proxy_set_buffer_bytes(typ: u32, start: u32, length: u32, data: usize, size: usize): u32;

class UpperRoot extends RootContext {
  // No configuration; see ../common.ts for why the SDK's own is not used.
  onConfigure(size: u32): bool {
    return true;
  }
  createContext(context_id: u32): Context {
    return new Upper(context_id, this);
  }
}

class Upper extends Context {
  constructor(context_id: u32, root: UpperRoot) {
    super(context_id, root);
  }
  onResponseBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    if (!end_of_stream) {
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, body_buffer_length as u32));
    const upper = String.UTF8.encode(body.toUpperCase());
    proxy_set_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, body_buffer_length as u32, changetype<usize>(upper), upper.byteLength);
    return FilterDataStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new UpperRoot(context_id); }, "upper_body");
