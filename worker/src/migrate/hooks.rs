//! Test hooks, read from the environment once at start: they make the
//! handoff's failure paths reachable from process tests (abort after K
//! adoptions, announce other versions, hold at a named point). Never set in
//! production.

use std::time::Duration;

use tracing::warn;

/// Test hooks, read from the environment once at start. Never set in
/// production; they make failure paths reachable from process tests.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// `BATON_TEST_ABORT_AFTER_ADOPT=K`: the new generation aborts (like a
    /// crash) when adopting the batch that brings it to K connections,
    /// before acknowledging it.
    pub abort_after_adopt: Option<u64>,
    /// `BATON_TEST_HANDOFF_VERSIONS=a,b`: handoff versions to announce.
    pub handoff_versions: Option<Vec<u16>>,
    /// `BATON_TEST_PAUSE_AT=<point>` together with
    /// `BATON_TEST_PAUSE_FILE=<path>`: hold this generation at `point`
    /// until `path` exists, so that a process test can kill a generation
    /// at a phase of its choosing. Both variables must be set, and the
    /// point must be one of [`PausePoint`]'s names; anything else leaves
    /// the hook off (with a warning). Every hold is logged (`test hook
    /// BATON_TEST_PAUSE_AT: holding`) and ends after [`PAUSE_LIMIT`] at
    /// the latest, so a forgotten variable delays a worker, never wedges it.
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
#[derive(Debug, Clone)]
pub struct Pause {
    at: PausePoint,
    release: std::path::PathBuf,
}

/// How often a held generation looks for its release file: often enough
/// not to slow a test down, rarely enough to cost nothing.
const PAUSE_POLL: Duration = Duration::from_millis(10);

/// The longest [`Hooks::pause`] holds a generation: far beyond what a
/// test needs to act on a held phase, short enough that a hook left set by
/// mistake delays an upgrade instead of wedging it.
pub const PAUSE_LIMIT: Duration = Duration::from_secs(60);

impl Hooks {
    pub fn from_env() -> Hooks {
        Hooks {
            abort_after_adopt: std::env::var("BATON_TEST_ABORT_AFTER_ADOPT")
                .ok()
                .and_then(|v| v.parse().ok()),
            handoff_versions: versions_var("BATON_TEST_HANDOFF_VERSIONS"),
            pause: pause_var(),
        }
    }

    /// Holds here while the pause hook is armed for `point` and its file
    /// does not exist (at most [`PAUSE_LIMIT`]). Only this task waits: the
    /// generation's connections, accept loops and heartbeat go on.
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

    pub(crate) fn handoff_versions(&self) -> Vec<u16> {
        self.handoff_versions
            .clone()
            .unwrap_or_else(|| crate::migrate::schema::HANDOFF_VERSIONS.to_vec())
    }
}

/// `BATON_TEST_PAUSE_AT` and `BATON_TEST_PAUSE_FILE`, both or nothing.
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
pub fn versions_var(name: &str) -> Option<Vec<u16>> {
    let text = std::env::var(name).ok()?;
    text.split(',').map(|v| v.trim().parse().ok()).collect()
}
