//! One instance of a plugin ([`Vm`]: a store, the instance, its root
//! context) and one request's run through it ([`WasmStream`], the
//! [`HttpStreamFilter`]).
//!
//! # Lifecycle
//!
//! An instance starts with `_initialize` (if exported: WASI reactors),
//! then `proxy_on_context_create(root)`, `proxy_on_vm_start`,
//! `proxy_on_configure` (either answering 0 refuses the plugin). Each
//! request gets a fresh context id: `proxy_on_context_create(id, root)`,
//! the callbacks, and at the request's end `proxy_on_done`,
//! `proxy_on_log`, `proxy_on_delete` (in Envoy's order).
//!
//! # Pausing
//!
//! A body callback that answers `StopIterationAndBuffer` (or another
//! stop) has its piece kept by the host and an empty piece passed on;
//! the next call sees everything kept so far plus the new piece, and at
//! the end of the body the plugin is shown the whole body whatever it
//! answers — "pause until the body's end", what body-rewriting plugins
//! need. A stop answered from a *headers* callback is taken as continue:
//! baton does not hold a head back (Envoy would until
//! `proxy_continue_stream`), so a plugin cannot delay headers waiting
//! for the body; it can still answer locally from the body callback.
//!
//! # Budget and failures
//!
//! Starting an instance (instantiation, `_initialize`, the root
//! context's creation, `proxy_on_vm_start`, `proxy_on_configure`) has its
//! own budget: the plugin's `fuel` or [`START_FUEL`], whichever is more.
//! A runtime's initialisation is not a request's work: Go's (a plugin
//! built with the proxy-wasm Go SDK for `GOOS=wasip1`) runs about 5.9
//! million instructions in `_initialize` and its root context, measured
//! here on the test plugins of `tests/interop/wasm/go/`; the
//! AssemblyScript SDK's, some thousands. Under wasmi that start takes
//! about 120 ms in a debug build (a Go plugin's whole load, compiling its
//! 2.7 MB module and starting the first instance, 64 ms in a release
//! build; BENCHMARKS.md "HTTP filters"), and a new instance is started
//! whenever more requests run at once than there are idle instances (see
//! the parent module).
//!
//! A request's callbacks share one budget of fuel (the plugin's `fuel`,
//! about one unit per wasm instruction): a plugin that spends it is
//! stopped where it is. That, or a trap, answers the request with a 500
//! (counted in `baton_wasm_stopped_total`) and the instance is thrown
//! away — its memory may be half-updated — so the next request gets a
//! clean one. Only that request fails; the worker goes on.

use std::sync::Arc;

use bytes::BytesMut;
use wasmi::{Func, Store, TrapCode, Val};

use super::Loaded;
use super::abi::DataStatus;
use super::host::HostState;
use crate::filter::ConnInfo;
use crate::filter::http::{
    Action, HeaderBlock, HttpStreamFilter, LocalResponse, RequestHead, ResponseHead,
};
use crate::telemetry::plugin::{Stop, registry};

/// Why this many: eight times what Go's runtime spends starting (see the
/// module docs), so a Go plugin starts whatever its per-request `fuel`,
/// while a start that loops is still stopped within a few seconds.
pub(crate) const START_FUEL: u64 = 50_000_000;

/// The root context's id.
const ROOT: i32 = 1;

/// The plugin's entry points, looked up once per instance.
#[derive(Debug)]
struct Exports {
    on_context_create: Option<Func>,
    on_request_headers: Option<Func>,
    on_request_body: Option<Func>,
    on_request_trailers: Option<Func>,
    on_response_headers: Option<Func>,
    on_response_body: Option<Func>,
    on_response_trailers: Option<Func>,
    on_done: Option<Func>,
    on_log: Option<Func>,
    on_delete: Option<Func>,
    on_tick: Option<Func>,
    on_queue_ready: Option<Func>,
}

/// One instance of a plugin, its root context created and configured.
#[derive(Debug)]
pub(crate) struct Vm {
    store: Store<HostState>,
    exports: Exports,
    /// The last context id handed out.
    last_context: i32,
}

/// Why an instance could not start or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{0}")]
    Wasm(#[from] wasmi::Error),
    #[error("the plugin answered {0} with false")]
    Refused(&'static str),
}

impl VmError {
    pub(crate) fn stop(&self) -> Stop {
        match self {
            VmError::Wasm(e) if e.as_trap_code() == Some(TrapCode::OutOfFuel) => Stop::Cpu,
            _ => Stop::Trap,
        }
    }
}

impl Vm {
    /// Instantiates `plugin` and starts its root context, within the
    /// start's budget (see the module docs).
    pub(crate) fn start(plugin: &Loaded) -> Result<Vm, VmError> {
        let mut store = Store::new(
            plugin.module.engine(),
            HostState::new(Arc::clone(&plugin.info)),
        );
        store.set_fuel(plugin.fuel.max(START_FUEL))?;
        let instance = plugin
            .linker
            .instantiate_and_start(&mut store, &plugin.module)?;
        let func = |store: &Store<HostState>, name: &str| instance.get_func(store, name);
        let memory = instance.get_memory(&store, "memory");
        let malloc = func(&store, "proxy_on_memory_allocate").or_else(|| func(&store, "malloc"));
        store.data_mut().memory = memory;
        store.data_mut().malloc = malloc;
        let exports = Exports {
            on_context_create: func(&store, "proxy_on_context_create"),
            on_request_headers: func(&store, "proxy_on_request_headers"),
            on_request_body: func(&store, "proxy_on_request_body"),
            on_request_trailers: func(&store, "proxy_on_request_trailers"),
            on_response_headers: func(&store, "proxy_on_response_headers"),
            on_response_body: func(&store, "proxy_on_response_body"),
            on_response_trailers: func(&store, "proxy_on_response_trailers"),
            on_done: func(&store, "proxy_on_done"),
            on_log: func(&store, "proxy_on_log"),
            on_delete: func(&store, "proxy_on_delete"),
            on_tick: func(&store, "proxy_on_tick"),
            on_queue_ready: func(&store, "proxy_on_queue_ready"),
        };
        let initialize = func(&store, "_initialize");
        let on_vm_start = func(&store, "proxy_on_vm_start");
        let on_configure = func(&store, "proxy_on_configure");
        let mut vm = Vm {
            store,
            exports,
            last_context: ROOT,
        };
        vm.call(initialize, &[])?;
        vm.call(vm.exports.on_context_create, &[ROOT, 0])?;
        if vm.call(on_vm_start, &[ROOT, 0])? == Some(0) {
            return Err(VmError::Refused("proxy_on_vm_start"));
        }
        let config_len = len(plugin.info.config.len());
        if vm.call(on_configure, &[ROOT, config_len])? == Some(0) {
            return Err(VmError::Refused("proxy_on_configure"));
        }
        _ = instance;
        Ok(vm)
    }

    /// Calls `func` (if the plugin exports it) with `args`; its first
    /// result.
    fn call(&mut self, func: Option<Func>, args: &[i32]) -> Result<Option<i32>, VmError> {
        let Some(func) = func else {
            return Ok(None);
        };
        let ty = func.ty(&self.store);
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default(*t)).collect();
        func.call(&mut self.store, &params, &mut results)?;
        Ok(results.first().and_then(Val::i32))
    }

    /// Runs the root context's `proxy_on_tick` within `fuel`.
    pub(crate) fn tick(&mut self, fuel: u64) -> Result<(), VmError> {
        self.store.set_fuel(fuel)?;
        self.call(self.exports.on_tick, &[ROOT]).map(drop)
    }

    /// Runs the root context's `proxy_on_queue_ready` for the queue
    /// `token` within `fuel`.
    pub(crate) fn queue_ready(&mut self, token: u32, fuel: u64) -> Result<(), VmError> {
        self.store.set_fuel(fuel)?;
        let token = i32::from_ne_bytes(token.to_ne_bytes());
        self.call(self.exports.on_queue_ready, &[ROOT, token])
            .map(drop)
    }

    /// Starts a request's context, with the request's budget.
    fn begin(&mut self, fuel: u64, conn: &ConnInfo) -> Result<i32, VmError> {
        self.store.set_fuel(fuel)?;
        let state = self.store.data_mut();
        state.reset();
        state.props.source = conn.source;
        state.props.destination = conn.local;
        state.props.listener = Some(Arc::clone(&conn.listener));
        self.last_context = self.last_context.checked_add(1).unwrap_or(ROOT + 1);
        let context = self.last_context;
        self.call(self.exports.on_context_create, &[context, ROOT])?;
        Ok(context)
    }

    /// Ends a request's context.
    fn end(&mut self, context: i32, fuel: u64) -> Result<(), VmError> {
        // Its own budget: a request that spent most of its fuel still
        // gets its context deleted.
        self.store.set_fuel(fuel)?;
        self.call(self.exports.on_done, &[context])?;
        self.call(self.exports.on_log, &[context])?;
        self.call(self.exports.on_delete, &[context])?;
        self.store.data_mut().reset();
        Ok(())
    }
}

fn len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// One request's run through a plugin.
pub(crate) struct WasmStream {
    plugin: Arc<Loaded>,
    /// `None` once the plugin failed (the instance is dropped) or if no
    /// instance could be had.
    vm: Option<Vm>,
    context: i32,
    /// Body kept while the plugin buffers: request, response.
    kept: [BytesMut; 2],
    /// The 500 for a request whose instance could not be had.
    answer: Option<Action>,
}

impl WasmStream {
    pub(crate) fn new(plugin: Arc<Loaded>, conn: &ConnInfo) -> WasmStream {
        let mut stream = WasmStream {
            vm: None,
            context: 0,
            kept: Default::default(),
            answer: None,
            plugin,
        };
        let started = stream
            .plugin
            .take()
            .and_then(|mut vm| Ok((vm.begin(stream.plugin.fuel, conn)?, vm)));
        match started {
            Ok((context, vm)) => {
                stream.context = context;
                stream.vm = Some(vm);
            }
            Err(e) => stream.answer = Some(stream.failed(&e)),
        }
        stream
    }

    /// Counts and logs a failure, and drops the instance.
    fn failed(&mut self, error: &VmError) -> Action {
        let stop = error.stop();
        registry().stopped(&self.plugin.info.name, stop);
        tracing::warn!(plugin = %self.plugin.info.name, error = %error, ?stop, "plugin stopped: answering 500");
        self.vm = None;
        match LocalResponse::new(500, "plugin failed\n") {
            Ok(local) => Action::Respond(Box::new(local)),
            Err(_) => Action::Continue,
        }
    }

    /// Runs one callback; a failure or a local response answers.
    fn run(
        &mut self,
        pick: fn(&Exports) -> Option<Func>,
        args: &[i32],
    ) -> Result<Option<i32>, Action> {
        let Some(vm) = self.vm.as_mut() else {
            return Ok(None);
        };
        let func = pick(&vm.exports);
        let result = vm.call(func, &[&[self.context], args].concat());
        match result {
            Err(e) => Err(self.failed(&e)),
            Ok(result) => match vm.store.data_mut().local.take() {
                Some(local) => Err(Action::Respond(Box::new(local))),
                None => Ok(result),
            },
        }
    }

    fn state(&mut self) -> Option<&mut HostState> {
        self.vm.as_mut().map(|vm| vm.store.data_mut())
    }

    /// Shows the plugin header block `map` (with `pseudo` first), runs
    /// `pick`, writes its changes back to `block`; `:status` comes back.
    fn headers(
        &mut self,
        map: usize,
        pseudo: Vec<(String, Vec<u8>)>,
        block: &mut dyn HeaderBlock,
        pick: fn(&Exports) -> Option<Func>,
        args: &[i32],
    ) -> Result<Option<Vec<u8>>, Action> {
        let Some(state) = self.state() else {
            return Ok(None);
        };
        let mut shown = pseudo;
        shown.extend(block.pairs());
        let count = len(shown.len());
        state.maps[map] = shown.clone();
        self.run(pick, &[&[count], args].concat())?;
        let Some(state) = self.state() else {
            return Ok(None);
        };
        let after = &state.maps[map];
        write_back(&shown, after, block);
        let status = after.iter().find(|(n, _)| n == ":status");
        Ok(status.map(|(_, v)| v.clone()))
    }

    fn body(
        &mut self,
        index: usize,
        chunk: &mut BytesMut,
        end_of_stream: bool,
        pick: fn(&Exports) -> Option<Func>,
    ) -> Action {
        if self.vm.is_none() {
            return Action::Continue;
        }
        let mut body = std::mem::take(&mut self.kept[index]);
        body.extend_from_slice(chunk);
        chunk.clear();
        let size = len(body.len());
        let Some(state) = self.state() else {
            return Action::Continue;
        };
        state.bodies[index] = body;
        state.end_of_stream[index] = end_of_stream;
        let answer = match self.run(pick, &[size, i32::from(end_of_stream)]) {
            Ok(answer) => answer,
            Err(action) => return action,
        };
        let Some(state) = self.state() else {
            return Action::Continue;
        };
        let body = std::mem::take(&mut state.bodies[index]);
        let buffer = answer.map(DataStatus::from_abi) == Some(DataStatus::Buffer);
        if buffer && !end_of_stream {
            self.kept[index] = body;
        } else {
            *chunk = body;
        }
        Action::Continue
    }
}

/// Applies to `block` what the plugin changed between `before` and
/// `after`: each name whose values differ gets the new ones. Pseudo-
/// headers and framing headers are not written (see [`super::host`]); a
/// value the block refuses is logged and dropped.
fn write_back(
    before: &[(String, Vec<u8>)],
    after: &[(String, Vec<u8>)],
    block: &mut dyn HeaderBlock,
) {
    let values = |pairs: &[(String, Vec<u8>)], name: &str| -> Vec<Vec<u8>> {
        pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let mut names: Vec<&str> = before
        .iter()
        .chain(after)
        .map(|(n, _)| n.as_str())
        .filter(|n| !n.starts_with(':') && !baton_config::filter::RESERVED_HEADERS.contains(n))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let new = values(after, name);
        if values(before, name) == new {
            continue;
        }
        let result = block
            .remove(name)
            .and_then(|_| new.iter().try_for_each(|value| block.append(name, value)));
        if let Err(e) = result {
            tracing::warn!(error = %e, "a plugin's header change was dropped");
        }
    }
}

fn request_pseudo(head: &dyn RequestHead) -> Vec<(String, Vec<u8>)> {
    vec![
        (":method".into(), head.method().as_bytes().to_vec()),
        (":path".into(), head.path().as_bytes().to_vec()),
    ]
}

impl HttpStreamFilter for WasmStream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, end_of_stream: bool) -> Action {
        if let Some(answer) = self.answer.take() {
            return answer;
        }
        if let Some(state) = self.state() {
            state.props.method = head.method().to_string();
            state.props.path = head.path().to_string();
            state.props.route = head.route_name().to_string();
        }
        let pseudo = request_pseudo(head);
        match self.headers(
            0,
            pseudo,
            head,
            |e| e.on_request_headers,
            &[i32::from(end_of_stream)],
        ) {
            Ok(_) => Action::Continue,
            Err(action) => action,
        }
    }

    fn on_request_body(&mut self, chunk: &mut BytesMut, end_of_stream: bool) -> Action {
        self.body(0, chunk, end_of_stream, |e| e.on_request_body)
    }

    fn on_request_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        match self.headers(1, Vec::new(), trailers, |e| e.on_request_trailers, &[]) {
            Ok(_) => Action::Continue,
            Err(action) => action,
        }
    }

    fn on_response_headers(&mut self, head: &mut dyn ResponseHead, end_of_stream: bool) -> Action {
        let status = head.status();
        let pseudo = vec![(":status".into(), status.to_string().into_bytes())];
        match self.headers(
            2,
            pseudo,
            head,
            |e| e.on_response_headers,
            &[i32::from(end_of_stream)],
        ) {
            Ok(Some(new)) => {
                let new = std::str::from_utf8(&new).ok().and_then(|s| s.parse().ok());
                if let Some(new) = new.filter(|n| *n != status)
                    && let Err(e) = head.set_status(new)
                {
                    tracing::warn!(error = %e, "a plugin's status change was dropped");
                }
                Action::Continue
            }
            Ok(None) => Action::Continue,
            Err(action) => action,
        }
    }

    fn on_response_body(&mut self, chunk: &mut BytesMut, end_of_stream: bool) -> Action {
        self.body(1, chunk, end_of_stream, |e| e.on_response_body)
    }

    fn on_response_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        match self.headers(3, Vec::new(), trailers, |e| e.on_response_trailers, &[]) {
            Ok(_) => Action::Continue,
            Err(action) => action,
        }
    }
}

impl Drop for WasmStream {
    fn drop(&mut self) {
        let Some(mut vm) = self.vm.take() else {
            return;
        };
        match vm.end(self.context, self.plugin.fuel) {
            Ok(()) => self.plugin.give_back(vm),
            Err(e) => {
                registry().stopped(&self.plugin.info.name, e.stop());
                tracing::warn!(plugin = %self.plugin.info.name, error = %e, "plugin failed ending a request");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn only_what_changed_is_written_back() {
        let mut block: Vec<(String, Vec<u8>)> = pairs(&[
            ("Host", "h"),
            ("x-a", "1"),
            ("x-b", "2"),
            ("content-length", "5"),
        ]);
        let before = pairs(&[
            (":path", "/"),
            ("host", "h"),
            ("x-a", "1"),
            ("x-b", "2"),
            ("content-length", "5"),
        ]);
        let after = pairs(&[
            (":path", "/changed"),
            ("host", "h"),
            ("x-b", "3"),
            ("x-new", "n"),
            ("x-new", "m"),
        ]);
        write_back(&before, &after, &mut block);
        assert_eq!(
            block,
            pairs(&[
                ("Host", "h"),
                ("content-length", "5"),
                ("x-b", "3"),
                ("x-new", "n"),
                ("x-new", "m"),
            ]),
            "x-a removed, x-b replaced, x-new added; framing and pseudo-headers untouched"
        );
    }

    #[test]
    fn a_bad_value_is_dropped() {
        let mut block: Vec<(String, Vec<u8>)> = Vec::new();
        write_back(&[], &pairs(&[("x-a", "1\r\nx-b: 2")]), &mut block);
        assert!(block.is_empty());
    }
}
