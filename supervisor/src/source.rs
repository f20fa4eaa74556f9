//! Where the config comes from, and reading the part the supervisor owns.

use std::path::{Path, PathBuf};

use baton_config::{ConfigError, SupervisorView};

/// A config file, or the embedded default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

/// Config text as read, and the supervisor's view of it. The text is what
/// every worker generation receives and parses in full.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: ConfigSource,
    /// The name error messages use: the path, or `<embedded default>`.
    pub name: String,
    pub text: String,
    pub view: SupervisorView,
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
            text,
            view,
        })
    }
}

impl Loaded {
    /// The worker binary: the config's `supervisor.worker_binary`, else
    /// `baton-worker` beside this executable.
    pub fn worker_binary(&self) -> std::io::Result<PathBuf> {
        if let Some(path) = &self.view.supervisor.worker_binary {
            return Ok(path.clone());
        }
        let exe = std::env::current_exe()?;
        Ok(exe.with_file_name("baton-worker"))
    }
}
