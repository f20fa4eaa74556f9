// Counts requests in a counter, and records each request's path length in
// a histogram; answers `x-count: <n>` on responses (read back with
// proxy_get_metric); counts its ticks (every 10 ms) in another counter.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, Counter, Histogram, stream_context } from "@solo-io/proxy-runtime";
import { get_property, set_tick_period_milliseconds } from "@solo-io/proxy-runtime/runtime";

// @ts-ignore: decorator
@external("env", "proxy_get_metric")
declare function proxy_get_metric(metric_id: u32, result: usize): u32;

class CountRoot extends RootContext {
  // No configuration; see ../common.ts for why the SDK's own is not used.
  onConfigure(size: u32): bool {
    return true;
  }
  requests: Counter | null = null;
  paths: Histogram | null = null;
  ticks: Counter | null = null;
  onStart(size: usize): bool {
    this.requests = new Counter("requests");
    this.paths = new Histogram("path_length");
    this.ticks = new Counter("ticks");
    set_tick_period_milliseconds(10);
    return true;
  }
  onTick(): void {
    this.ticks!.increment(1);
  }
  createContext(context_id: u32): Context {
    return new Count(context_id, this);
  }
}

let value: u64 = 0;

class Count extends Context {
  root: CountRoot;
  constructor(context_id: u32, root: CountRoot) {
    super(context_id, root);
    this.root = root;
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const requests = this.root.requests!;
    requests.increment(1);
    const paths = this.root.paths!;
    paths.record(paths.metric_id, get_property("request.path").byteLength as u64);
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    proxy_get_metric(this.root.requests!.metric_id, changetype<usize>(this) + offsetof<Count>("seen"));
    stream_context.headers.response.add("x-count", this.seen.toString());
    return FilterHeadersStatusValues.Continue;
  }
  seen: u64 = 0;
}

registerRootContext((context_id: u32) => { return new CountRoot(context_id); }, "count");
