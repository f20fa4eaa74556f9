//! Test hooks, read from the environment once at start: they make the
//! handoff's failure paths reachable from process tests (abort after K
//! adoptions, announce other versions, hold at a named point).
//!
//! The environment is read, and the misbehaviour compiled, only with the
//! cargo feature `test-hooks`, which the test crate turns on: a release
//! build (`cargo build --release -p baton-worker`, the Debian package)
//! has none of it, and `.ci/run` checks that its binary names no
//! `BATON_TEST_` variable. Without the feature [`Hooks::from_env`] is
//! [`Hooks::default`], and only what code sets (the component tests'
//! `handoff_versions`) remains.

#[cfg(feature = "test-hooks")]
use std::time::Duration;

#[cfg(feature = "test-hooks")]
use tracing::warn;

/// Test hooks, read from the environment once at start. Never set in
/// production; they make failure paths reachable from process tests.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// `BATON_TEST_ABORT_AFTER_ADOPT=K`: the new generation aborts (like a
    /// crash) when adopting the batch that brings it to K connections,
    /// before acknowledging it.
    #[cfg(feature = "test-hooks")]
    pub abort_after_adopt: Option<u64>,
    /// `BATON_TEST_HANDOFF_VERSIONS=a,b`: handoff versions to announce.
    pub handoff_versions: Option<Vec<u16>>,
    /// `BATON_TEST_CTRL_VERSIONS=a,b`: ctrl message-set versions to
    /// announce to the supervisor.
    #[cfg(feature = "test-hooks")]
    pub ctrl_versions: Option<Vec<u16>>,
    /// `BATON_TEST_PAUSE_AT=<point>` together with
    /// `BATON_TEST_PAUSE_FILE=<path>`: hold this generation at `point`
    /// until `path` exists, so that a process test can kill a generation
    /// at a phase of its choosing. Both variables must be set, and the
    /// point must be one of [`PausePoint`]'s names; anything else leaves
    /// the hook off (with a warning). Every hold is logged (`test hook
    /// BATON_TEST_PAUSE_AT: holding`) and ends after [`PAUSE_LIMIT`] at
    /// the latest, so a forgotten variable delays a worker, never wedges it.
    #[cfg(feature = "test-hooks")]
    pub pause: Option<Pause>,
}

/// Where [`Hooks::pause`] can hold a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// `starting`: a new generation has its config and listeners, and has
    /// not parsed them or said `Ready`.
    Starting,
    /// `ready`: a new generation was ordered to take over and has not
    /// started its handoff handshake.
    Ready,
    /// `migrating`: an old generation has had its first batch of
    /// connections acknowledged and has not sent the rest.
    Migrating,
}

impl PausePoint {
    #[cfg(feature = "test-hooks")]
    const ALL: [PausePoint; 3] = [
        PausePoint::Starting,
        PausePoint::Ready,
        PausePoint::Migrating,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PausePoint::Starting => "starting",
            PausePoint::Ready => "ready",
            PausePoint::Migrating => "migrating",
        }
    }
}

/// An armed [`Hooks::pause`].
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone)]
pub struct Pause {
    at: PausePoint,
    release: std::path::PathBuf,
}

#[cfg(feature = "test-hooks")]
/// How often a held generation looks for its release file: often enough
/// not to slow a test down, rarely enough to cost nothing.
const PAUSE_POLL: Duration = Duration::from_millis(10);

#[cfg(feature = "test-hooks")]
/// The longest [`Hooks::pause`] holds a generation: far beyond what a
/// test needs to act on a held phase, short enough that a hook left set by
/// mistake delays an upgrade instead of wedging it.
pub const PAUSE_LIMIT: Duration = Duration::from_secs(60);

impl Hooks {
    /// No hook but `handoff_versions`: a generation that speaks only
    /// `versions` on the handoff channel (for component tests).
    pub fn speaking(versions: Vec<u16>) -> Hooks {
        Hooks {
            handoff_versions: Some(versions),
            #[cfg(feature = "test-hooks")]
            ctrl_versions: None,
            #[cfg(feature = "test-hooks")]
            abort_after_adopt: None,
            #[cfg(feature = "test-hooks")]
            pause: None,
        }
    }

    /// The hooks the environment arms: none without the feature.
    #[cfg(not(feature = "test-hooks"))]
    pub fn from_env() -> Hooks {
        Hooks::default()
    }

    /// The hooks the environment arms.
    #[cfg(feature = "test-hooks")]
    pub fn from_env() -> Hooks {
        Hooks {
            abort_after_adopt: std::env::var("BATON_TEST_ABORT_AFTER_ADOPT")
                .ok()
                .and_then(|v| v.parse().ok()),
            handoff_versions: versions_var("BATON_TEST_HANDOFF_VERSIONS"),
            ctrl_versions: versions_var("BATON_TEST_CTRL_VERSIONS"),
            pause: pause_var(),
        }
    }

    /// Without the feature there is no pause hook: returns at once.
    #[cfg(not(feature = "test-hooks"))]
    pub async fn pause(&self, _point: PausePoint) {}

    /// Holds here while the pause hook is armed for `point` and its file
    /// does not exist (at most [`PAUSE_LIMIT`]). Only this task waits: the
    /// generation's connections, accept loops and heartbeat go on.
    #[cfg(feature = "test-hooks")]
    pub async fn pause(&self, point: PausePoint) {
        let Some(pause) = self.pause.as_ref().filter(|p| p.at == point) else {
            return;
        };
        warn!(
            point = point.name(),
            pid = std::process::id(),
            release = %pause.release.display(),
            "test hook BATON_TEST_PAUSE_AT: holding"
        );
        let released = tokio::time::timeout(PAUSE_LIMIT, async {
            while !pause.release.exists() {
                tokio::time::sleep(PAUSE_POLL).await;
            }
        })
        .await;
        match released {
            Ok(()) => warn!(
                point = point.name(),
                "test hook BATON_TEST_PAUSE_AT: released"
            ),
            Err(_) => warn!(
                point = point.name(),
                "test hook BATON_TEST_PAUSE_AT: not released within {PAUSE_LIMIT:?}; going on"
            ),
        }
    }

    /// The ctrl versions this worker announces: this build's, unless a
    /// test hook says otherwise.
    pub(crate) fn ctrl_versions(&self) -> Vec<u16> {
        #[cfg(feature = "test-hooks")]
        if let Some(versions) = &self.ctrl_versions {
            return versions.clone();
        }
        baton_ipc::PROTOCOL_VERSIONS.to_vec()
    }

    pub(crate) fn handoff_versions(&self) -> Vec<u16> {
        self.handoff_versions
            .clone()
            .unwrap_or_else(|| crate::migrate::schema::HANDOFF_VERSIONS.to_vec())
    }
}

/// `BATON_TEST_PAUSE_AT` and `BATON_TEST_PAUSE_FILE`, both or nothing.
#[cfg(feature = "test-hooks")]
fn pause_var() -> Option<Pause> {
    let at = std::env::var("BATON_TEST_PAUSE_AT").ok();
    let release = std::env::var_os("BATON_TEST_PAUSE_FILE");
    let (at, release) = match (at, release) {
        (None, None) => return None,
        (Some(at), Some(release)) if !release.is_empty() => (at, release),
        _ => {
            warn!("test hook ignored: BATON_TEST_PAUSE_AT and BATON_TEST_PAUSE_FILE go together");
            return None;
        }
    };
    let Some(at) = PausePoint::ALL.into_iter().find(|p| p.name() == at) else {
        warn!(point = %at, "test hook ignored: BATON_TEST_PAUSE_AT names no pause point");
        return None;
    };
    warn!(
        point = at.name(),
        "test hook BATON_TEST_PAUSE_AT armed: this worker will hold there"
    );
    Some(Pause {
        at,
        release: std::path::PathBuf::from(release),
    })
}

/// `a,b,c` → versions.
#[cfg(feature = "test-hooks")]
fn versions_var(name: &str) -> Option<Vec<u16>> {
    let text = std::env::var(name).ok()?;
    text.split(',').map(|v| v.trim().parse().ok()).collect()
}
