//! `wasm`: proxy-wasm plugins (ABI 0.2.1, the one Envoy and MOSN
//! implement; modules built for 0.2.0, such as the AssemblyScript SDK's,
//! load too) as HTTP filters.
//!
//! * [`abi`] — the ABI's codes and its header-pairs encoding;
//! * [`host`] — the functions a plugin imports and the state they see;
//! * [`vm`] — one instance ([`vm::Vm`]) and one request's run through it
//!   ([`vm::WasmStream`]): lifecycle, pausing, the CPU budget;
//! * [`shared`] — shared data and queues.
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
//! # Ticks
//!
//! `proxy_set_tick_period_milliseconds` starts a task that calls
//! `proxy_on_tick` every period on one idle instance (the root context of
//! whichever instance is free), within the plugin's fuel. The task ends
//! with the generation's runtime.

pub(crate) mod abi;
pub(crate) mod host;
pub(crate) mod shared;
pub(crate) mod vm;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use baton_config::filter::WasmPlugin;
use parking_lot::Mutex;
use wasmi::{CompilationMode, Config, Engine, Linker, Module};

use self::host::{HostState, Info};
use self::vm::{Vm, VmError, WasmStream};
use crate::filter::http::{HttpFilter, HttpStreamFilter};
use crate::filter::{ConnInfo, Mobility};

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
        let linker = host::linker(&module).map_err(compile)?;
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
