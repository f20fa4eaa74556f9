//! One line per event on stderr, through `tracing`; the filter can be
//! replaced at run time ([`LogLevel`], the admin API's `/logging`).

use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Replaces the subscriber's filter.
type Reload = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// The log filter in force, for the supervisor and its workers: the
/// supervisor's own subscriber is reloaded at once; the workers follow
/// [`LogLevel::watch`] (the main loop sends each one `SetLogLevel`), and a
/// new generation starts with [`LogLevel::current`] (`BATON_LOG`).
pub struct LogLevel {
    reload: Reload,
    filter: watch::Sender<String>,
}

impl std::fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLevel")
            .field("filter", &*self.filter.borrow())
            .finish_non_exhaustive()
    }
}

impl LogLevel {
    /// The filter in force.
    pub fn current(&self) -> String {
        self.filter.borrow().clone()
    }

    /// Changes of the filter, for the workers.
    pub fn watch(&self) -> watch::Receiver<String> {
        self.filter.subscribe()
    }

    /// Sets the filter (`info`, `baton=debug,warn`...): refused, with the
    /// parser's reason, when it is not a valid tracing filter.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let parsed = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        (self.reload)(parsed)?;
        self.filter.send_replace(filter.to_string());
        Ok(())
    }

    /// A level that changes nothing but itself, for tests.
    #[cfg(test)]
    pub fn detached(filter: &str) -> LogLevel {
        LogLevel {
            reload: Box::new(|_| Ok(())),
            filter: watch::channel(filter.to_string()).0,
        }
    }
}

/// Installs the subscriber and returns the filter in force, which the
/// workers inherit (`BATON_LOG`): `RUST_LOG` if set, else the config's
/// `supervisor.log_level`, else `info`.
pub fn init(config_level: Option<&str>) -> LogLevel {
    let wanted = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| config_level.map(str::to_string))
        .unwrap_or_else(|| "info".to_string());
    let (filter, text) = match EnvFilter::try_new(&wanted) {
        Ok(filter) => (filter, wanted),
        Err(_) => (EnvFilter::new("info"), "info".to_string()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    builder.init();
    LogLevel {
        reload: Box::new(move |filter| handle.reload(filter).map_err(|e| e.to_string())),
        filter: watch::channel(text).0,
    }
}
