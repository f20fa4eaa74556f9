//! Where the config comes from, and reading the part the supervisor owns.

use std::path::{Path, PathBuf};

use baton_config::{ConfigError, SupervisorView};

/// A config file, or the embedded default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

/// Config text as read (and, with `[xds]`, composed), and the
/// supervisor's view of it. The text is what every worker generation
/// receives and parses in full.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: ConfigSource,
    /// The name error messages use: the path, or `<embedded default>`.
    pub name: String,
    pub text: String,
    pub view: SupervisorView,
    /// The text as read from the source. `text` is the same, or, with
    /// `[xds]`, this with the control plane's resources appended
    /// (by the xDS module).
    pub file_text: String,
}

impl ConfigSource {
    pub fn from_arg(path: Option<&Path>) -> ConfigSource {
        path.map_or(ConfigSource::Embedded, |p| {
            ConfigSource::File(p.to_path_buf())
        })
    }

    /// Reads the text and parses the supervisor's part of it.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let (name, text) = match self {
            ConfigSource::Embedded => (
                baton_config::DEFAULT_SOURCE.to_string(),
                baton_config::DEFAULT_CONFIG.to_string(),
            ),
            ConfigSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                (path.display().to_string(), text)
            }
        };
        let view = SupervisorView::parse(&name, &text)?;
        Ok(Loaded {
            source: self.clone(),
            name,
            file_text: text.clone(),
            text,
            view,
        })
    }
}

impl Loaded {
    /// The worker binary: the config's `supervisor.worker_binary`, else
    /// `baton-worker` beside this executable, else this executable itself,
    /// which carries the worker (`main.rs` becomes one under
    /// `BATON_ROLE=worker`). The last case is `cargo run --bin baton` on a
    /// fresh checkout, which builds `baton` alone; an installed baton has
    /// `baton-worker` beside it, and an upgrade runs whichever file is at
    /// that path then.
    pub fn worker_binary(&self) -> std::io::Result<PathBuf> {
        if let Some(path) = &self.view.supervisor.worker_binary {
            return Ok(path.clone());
        }
        let exe = own_path()?;
        let beside = exe.with_file_name("baton-worker");
        Ok(if beside.exists() { beside } else { exe })
    }
}

/// Where this executable is. Linux names an executable whose file was
/// replaced since it started `<path> (deleted)`; the path then holds the
/// replacement, which is what a new generation should run.
fn own_path() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(
        match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
            Some(path) => PathBuf::from(path),
            None => exe,
        },
    )
}
