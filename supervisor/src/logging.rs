//! One line per event on stderr, through `tracing`.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber and returns the filter in force, which the
/// workers inherit (`BATON_LOG`): `RUST_LOG` if set, else the config's
/// `supervisor.log_level`, else `info`.
pub fn init(config_level: Option<&str>) -> String {
    let wanted = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| config_level.map(str::to_string))
        .unwrap_or_else(|| "info".to_string());
    let (filter, text) = match EnvFilter::try_new(&wanted) {
        Ok(filter) => (filter, wanted),
        Err(_) => (EnvFilter::new("info"), "info".to_string()),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    text
}
