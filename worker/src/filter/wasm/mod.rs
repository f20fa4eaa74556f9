//! `wasm`: proxy-wasm plugins (ABI 0.2.1, the one Envoy and MOSN
//! implement; modules built for 0.2.0, such as the AssemblyScript SDK's,
//! load too) as HTTP filters. Plugins built with the proxy-wasm Go SDK by
//! plain Go (`GOOS=wasip1`, `-buildmode=c-shared`) are WASI reactors:
//! they import a few WASI functions ([`wasi`]) and export `_initialize`,
//! which the host calls once per instance before anything else (see
//! [`vm`] for what Go's start costs). Both kinds are tested end to end
//! (`tests/tests/filter_wasm.rs`).
//!
//! * [`abi`] — the ABI's codes and its header-pairs encoding;
//! * [`host`] — the functions a plugin imports and the state they see;
//! * [`vm`] — one instance ([`vm::Vm`]) and one request's run through it
//!   ([`vm::WasmStream`]): lifecycle, pausing, the CPU budget;
//! * [`shared`] — shared data and queues;
//! * [`wasi`] — the few WASI functions plugins import (Go's runtime).
//!
//! # Engine: wasmi
//!
//! An interpreter, chosen over wasmtime for what this project pays for a
//! JIT: measured here (2 shared cores), `cargo build -p wasmi` adds 8 s of
//! wall time (14 s of CPU, 0.45 GB peak RSS) to a cold debug build.
//! wasmtime was not built here for comparison: it brings the Cranelift
//! code generator and its own runtime, several times wasmi's code to
//! compile on every cold build and in the binary. Plugins on the data path are short
//! (header edits, checks), where an interpreter's per-call cost is
//! close to a JIT's and instantiation is cheaper; its fuel metering
//! is exact (one unit per instruction, deterministic), which is what the
//! per-request budget needs. The price: long-running plugins (body
//! transforms of big bodies) run several times slower than under a JIT.
//!
//! # Compiled once, instantiated per concurrent request
//!
//! The module is read, validated and compiled (eagerly) once per
//! generation, when the config's chains are built; one instance is
//! started then too, so a file that is missing, not wasm, missing an
//! import's type, or whose root context refuses to start or its
//! configuration is a build error: the generation is refused and the
//! running one keeps serving. Instances are kept in a pool: a request
//! takes one (or starts a new one) and gives it back when it ends. The
//! worker's runtime moves tasks between its threads, so an instance
//! cannot be tied to a thread the way Envoy ties one to each worker; the
//! pool gives the same property — no instance is ever used by two
//! requests at once — with as many instances as requests run at once.
//! State a plugin keeps in its globals is therefore per instance (as it
//! is per thread in Envoy); what must be shared goes through shared data,
//! queues and metrics, which are per worker process, i.e. per generation.
//!
//! # Ticks and queues
//!
//! `proxy_set_tick_period_milliseconds` starts a task that calls
//! `proxy_on_tick` every period on one idle instance (the root context of
//! whichever instance is free), within the plugin's fuel. Another task
//! calls `proxy_on_queue_ready(root, token)` when a queue the plugin
//! registered gets items (see [`shared`]), on an idle instance or a new
//! one (a tick can be skipped, a queue's news cannot), within the
//! plugin's fuel. The tasks end with the plugin or the generation's
//! runtime; a failure is logged and counted, and drops the instance.

pub(crate) mod abi;
pub(crate) mod host;
pub(crate) mod shared;
pub(crate) mod vm;
pub(crate) mod wasi;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use baton_config::filter::WasmPlugin;
use parking_lot::Mutex;
use wasmi::{CompilationMode, Config, Engine, ExternType, Linker, Module, Val, ValType};

use self::abi::Status;
use self::host::{HostState, Info};
use self::vm::{Vm, VmError, WasmStream};
use crate::filter::http::{HttpFilter, HttpStreamFilter};
use crate::filter::{ConnInfo, Mobility};
use crate::telemetry::plugin::registry;

/// Why this many: idle instances kept for the next requests; past it a
/// finished request's instance is dropped (a burst of concurrency does
/// not pin its memory for ever). Each is about a plugin's linear memory.
const MAX_IDLE: usize = 64;

/// A plugin that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("read wasm plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("compile wasm plugin {path}: {source}")]
    Compile { path: PathBuf, source: wasmi::Error },
    #[error("start wasm plugin {path}: {source}")]
    Start { path: PathBuf, source: VmError },
}

/// A compiled plugin and its idle instances.
#[derive(Debug)]
pub(crate) struct Loaded {
    module: Module,
    linker: Linker<HostState>,
    info: Arc<Info>,
    fuel: u64,
    idle: Mutex<Vec<Vm>>,
}

impl Loaded {
    /// An idle instance, or a new one.
    fn take(&self) -> Result<Vm, VmError> {
        if let Some(vm) = self.idle.lock().pop() {
            return Ok(vm);
        }
        Vm::start(self)
    }

    fn give_back(&self, vm: Vm) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(vm);
        }
    }
}

/// The `wasm` filter: one plugin, configured.
#[derive(Debug, Clone)]
pub(crate) struct Plugin {
    loaded: Arc<Loaded>,
}

impl Plugin {
    /// Reads, compiles and starts `settings`' module (see the module
    /// docs).
    pub(crate) fn load(settings: &WasmPlugin) -> Result<Plugin, LoadError> {
        let path = settings.file.clone();
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })?;
        let mut config = Config::default();
        config
            .consume_fuel(true)
            .compilation_mode(CompilationMode::Eager);
        let engine = Engine::new(&config);
        let compile = |source| LoadError::Compile {
            path: path.clone(),
            source,
        };
        let module = Module::new(&engine, &bytes).map_err(compile)?;
        let linker = linker(&module).map_err(compile)?;
        let name = if settings.root_id.is_empty() {
            path.file_stem()
                .map_or_else(|| "wasm".into(), |s| s.to_string_lossy().into_owned())
        } else {
            settings.root_id.clone()
        };
        let loaded = Arc::new(Loaded {
            module,
            linker,
            info: Arc::new(Info {
                name,
                root_id: settings.root_id.clone(),
                config: settings.config.clone().into_bytes(),
                tick_ms: AtomicU32::new(0),
                tick_changed: tokio::sync::Notify::new(),
                queues: Arc::default(),
            }),
            fuel: settings.fuel,
            idle: Mutex::new(Vec::new()),
        });
        let first = Vm::start(&loaded).map_err(|source| LoadError::Start {
            path: path.clone(),
            source,
        })?;
        loaded.give_back(first);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(ticks(Arc::downgrade(&loaded)));
            runtime.spawn(queues_ready(Arc::downgrade(&loaded)));
        }
        Ok(Plugin { loaded })
    }
}

impl HttpFilter for Plugin {
    fn name(&self) -> &'static str {
        "wasm"
    }

    /// A request's context lives and dies with the request: between two
    /// requests a connection keeps nothing in the plugin.
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(WasmStream::new(Arc::clone(&self.loaded), conn))
    }
}

/// A linker for `module`: the host's functions, and a stub for every
/// other function it imports (see [`host`]'s docs); WASI
/// imports are [`wasi`]'s, and one it does not implement answers `ENOSYS`.
fn linker(module: &Module) -> Result<Linker<HostState>, wasmi::Error> {
    let mut l = Linker::new(module.engine());
    host::define(&mut l)?;
    wasi::define(&mut l)?;
    l.allow_shadowing(true);
    for import in module.imports() {
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        let (module_name, name) = (import.module(), import.name());
        let ours = module_name == "env"
            && host::HOST
                .iter()
                .any(|(n, sig)| *n == name && host::signature(sig) == *ty);
        let is_wasi = wasi::MODULES.contains(&module_name);
        let ours = ours
            || is_wasi
                && wasi::WASI
                    .iter()
                    .any(|(n, sig)| *n == name && host::signature(sig) == *ty);
        if ours {
            continue;
        }
        if host::HOST.iter().any(|(n, _)| *n == name) {
            tracing::warn!(
                import = name,
                "a plugin imports a host function with another signature: it gets a stub"
            );
        }
        let results: Vec<Val> = ty
            .results()
            .iter()
            .map(|t| match t {
                ValType::I32 if is_wasi => Val::I32(wasi::errno::NOSYS),
                ValType::I32 => Val::I32(Status::Unimplemented as i32),
                other => Val::default(*other),
            })
            .collect();
        l.func_new(module_name, name, ty.clone(), move |_, _, out| {
            out.clone_from_slice(&results);
            Ok(())
        })?;
    }
    Ok(l)
}

/// Calls `proxy_on_queue_ready` for each queue the plugin registered
/// that got items, while the plugin is alive.
async fn queues_ready(plugin: Weak<Loaded>) {
    loop {
        let ready = {
            let Some(loaded) = plugin.upgrade() else {
                return;
            };
            Arc::clone(&loaded.info.queues)
        };
        ready.notify.notified().await;
        let Some(loaded) = plugin.upgrade() else {
            return;
        };
        for token in ready.take() {
            let result = loaded.take().and_then(|mut vm| {
                vm.queue_ready(token, loaded.fuel)?;
                Ok(vm)
            });
            match result {
                Ok(vm) => loaded.give_back(vm),
                Err(e) => {
                    registry().stopped(&loaded.info.name, e.stop());
                    tracing::warn!(plugin = %loaded.info.name, error = %e, "proxy_on_queue_ready failed");
                }
            }
        }
    }
}

/// Calls `proxy_on_tick` every period the plugin asked for, while the
/// plugin is alive.
async fn ticks(plugin: Weak<Loaded>) {
    loop {
        let (period, info) = {
            let Some(loaded) = plugin.upgrade() else {
                return;
            };
            let period = loaded.info.tick_ms.load(Ordering::Relaxed);
            (period, Arc::clone(&loaded.info))
        };
        if period == 0 {
            info.tick_changed.notified().await;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(u64::from(period))).await;
        let Some(loaded) = plugin.upgrade() else {
            return;
        };
        let vm = loaded.idle.lock().pop();
        let Some(mut vm) = vm else {
            // Every instance is busy: this tick is skipped.
            continue;
        };
        match vm.tick(loaded.fuel) {
            Ok(()) => loaded.give_back(vm),
            Err(e) => {
                tracing::warn!(plugin = %loaded.info.name, error = %e, "proxy_on_tick failed");
            }
        }
    }
}
