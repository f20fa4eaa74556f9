//! A release: a worker binary and a config, as one generation runs them.
//!
//! The supervisor keeps the current release and the previous one (the
//! rollback target). Each holds its binary **open**, and workers are
//! spawned by executing `/proc/<supervisor pid>/fd/<n>`: the kernel resolves
//! that link to the open file itself, so a rollback still runs the old
//! binary after it was deleted or replaced on disk by a rename (what
//! package managers and `install` do). Rewriting the same file in place
//! would change what the fd sees; deploys that do that lose the guarantee.
//!
//! `baton upgrade --binary PATH` opens PATH itself and passes the open file
//! over the control socket ([`NamedBinary`]): the supervisor then runs the
//! very file the operator's CLI could read, not whatever the path holds by
//! the time the supervisor gets to it, and keeps it for rollback.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::source::Loaded;

/// A worker binary held open, and the config it runs with.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    /// The path it was opened at (for logs, status and `argv[0]`).
    pub binary: PathBuf,
    file: Arc<File>,
    pub config: Loaded,
}

/// A worker binary named by `baton upgrade --binary`: its path (for logs,
/// status and `argv[0]`), and the file the CLI opened, when it could.
#[derive(Debug, Clone)]
pub(crate) struct NamedBinary {
    pub path: PathBuf,
    pub file: Option<Arc<File>>,
}

impl NamedBinary {
    /// The release of this binary with `config`: the CLI's file, else the
    /// path opened now.
    pub(crate) fn release(&self, config: Loaded) -> Result<Release, BinaryError> {
        match &self.file {
            Some(file) => Release::from_file(&self.path, Arc::clone(file), config),
            None => Release::open(&self.path, config),
        }
    }
}

/// The same path, and the same open file (not merely an equal one).
impl PartialEq for NamedBinary {
    fn eq(&self, other: &NamedBinary) -> bool {
        self.path == other.path
            && match (&self.file, &other.file) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for NamedBinary {}

/// Why a binary cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("worker binary {}: {reason}", path.display())]
pub struct BinaryError {
    pub path: PathBuf,
    pub reason: String,
}

impl Release {
    /// Opens `binary` (close-on-exec, read-only) and checks that it is an
    /// executable regular file.
    pub(crate) fn open(binary: &Path, config: Loaded) -> Result<Release, BinaryError> {
        let file = File::open(binary).map_err(|e| BinaryError {
            path: binary.to_path_buf(),
            reason: e.to_string(),
        })?;
        Release::from_file(binary, Arc::new(file), config)
    }

    /// A release of `file`, already open (by the CLI, say), known as
    /// `binary`; checked like [`Release::open`].
    pub(crate) fn from_file(
        binary: &Path,
        file: Arc<File>,
        config: Loaded,
    ) -> Result<Release, BinaryError> {
        let fail = |reason: String| BinaryError {
            path: binary.to_path_buf(),
            reason,
        };
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(fail("not executable".into()));
        }
        Ok(Release {
            binary: binary.to_path_buf(),
            file,
            config,
        })
    }

    /// The same binary (the same open file) with another config: an xDS
    /// update changes the config, never the binary.
    pub(crate) fn with_config(&self, config: Loaded) -> Release {
        Release {
            binary: self.binary.clone(),
            file: Arc::clone(&self.file),
            config,
        }
    }

    /// What to `exec`: the open file, through this process's fd table.
    #[expect(
        clippy::disallowed_methods,
        reason = "the number only names the file in a /proc path; `self` keeps owning it"
    )]
    pub(crate) fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ConfigSource;

    #[test]
    fn a_deleted_binary_stays_runnable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        std::fs::copy("/bin/echo", &path).unwrap();
        let release = Release::open(&path, ConfigSource::Embedded.load().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let out = std::process::Command::new(release.exec_path())
            .arg("still here")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"still here\n");
    }

    #[test]
    fn refuses_what_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = ConfigSource::Embedded.load().unwrap();
        let err = Release::open(&dir.path().join("absent"), loaded.clone()).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "data").unwrap();
        assert!(
            Release::open(&plain, loaded.clone())
                .unwrap_err()
                .reason
                .contains("not executable")
        );
        assert!(
            Release::open(dir.path(), loaded)
                .unwrap_err()
                .reason
                .contains("regular file")
        );
    }
}
