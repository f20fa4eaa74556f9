// Answers 403 itself for request paths that start with the configured
// prefix (read as the `request.path` property), with a header and a body.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, send_local_response, GrpcStatusValues, HeaderPair } from "@solo-io/proxy-runtime";
import { get_property } from "@solo-io/proxy-runtime/runtime";
import { readConfiguration } from "../common";

class DenyRoot extends RootContext {
  prefix: string = "";
  onConfigure(size: u32): bool {
    this.prefix = readConfiguration(size);
    return this.prefix.length > 0;
  }
  createContext(context_id: u32): Context {
    return new Deny(context_id, this);
  }
}

class Deny extends Context {
  prefix: string;
  constructor(context_id: u32, root: DenyRoot) {
    super(context_id, root);
    this.prefix = root.prefix;
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = String.UTF8.decode(get_property("request.path"));
    if (path.startsWith(this.prefix)) {
      const headers: HeaderPair[] = [new HeaderPair(String.UTF8.encode("x-denied-by"), String.UTF8.encode("wasm"))];
      send_local_response(403, "denied", String.UTF8.encode("denied: " + path), headers, GrpcStatusValues.PermissionDenied);
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new DenyRoot(context_id); }, "deny_path");
