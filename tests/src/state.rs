//! Waiting for the supervisor's published state instead of for log
//! wording: the `status` reply of the control socket (what `baton status
//! --json` prints, typed) and the admin endpoint's `/metrics`.
//!
//! A test acts when the state says so — a generation `serving`, an upgrade
//! `migrating`, a count of finished upgrades, a metric past a value — and
//! reads the log only to assert that a line was written, after a state
//! wait ([`Baton::logged`]).
//!
//! The status is asked for over the control socket directly, with the
//! supervisor's own framing and types (`baton_supervisor::control`): the
//! same request and reply as `baton status --json`, without a process per
//! poll. [`crate::faults::status_json`] runs the real CLI.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

pub use baton_supervisor::control::proto::{
    GenerationStatus, Outcome, Reply, Request, Status, UpgradeCounts, UpgradeReport,
};
use baton_supervisor::control::{STATUS_TIMEOUT, frame};

use crate::admin::{http, sample};
use crate::{Baton, PATIENCE, alive, wait_a_little};

/// The phases of an upgrade in the order it goes through them, as
/// `upgrade_phase` begins (`starting generation 2`, `migrating 1 -> 2`…).
const PHASES: [&str; 5] = [
    "loading",
    "starting",
    "handing off",
    "migrating",
    "forwarding",
];

/// Where `upgrade_phase` is in [`PHASES`] (`None`: `idle`).
fn phase_rank(phase: &str) -> Option<usize> {
    PHASES.iter().position(|p| phase.starts_with(p))
}

impl Baton {
    /// One `status` request over the control socket; `Err` says why
    /// there was no status (no supervisor listening yet, say).
    pub fn try_status(&self) -> Result<Status, String> {
        let path = self.control_socket();
        let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
        let mut stream = UnixStream::connect(&path).map_err(|e| io("connect to", e))?;
        stream
            .set_read_timeout(Some(STATUS_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(STATUS_TIMEOUT)))
            .map_err(|e| io("set timeouts on", e))?;
        let request = frame::encode(&Request::Status).map_err(|e| e.to_string())?;
        stream
            .write_all(&request)
            .map_err(|e| io("send status to", e))?;
        let mut header = [0u8; frame::HEADER_LEN];
        stream
            .read_exact(&mut header)
            .map_err(|e| io("read the reply of", e))?;
        let mut body = vec![0u8; frame::body_len(header).map_err(|e| e.to_string())?];
        stream
            .read_exact(&mut body)
            .map_err(|e| io("read the reply of", e))?;
        match frame::decode_body::<Reply>(&body).map_err(|e| e.to_string())? {
            Reply::Status(status) => Ok(status),
            other => Err(format!("status answered with {other:?}")),
        }
    }

    /// The supervisor's status now.
    pub fn status(&self) -> Status {
        self.try_status()
            .unwrap_or_else(|e| panic!("baton status: {e}"))
    }

    /// Polls the status until `condition` holds; returns that status.
    /// Panics after [`PATIENCE`], or as soon as the supervisor has exited,
    /// with the last status (or why there was none) and the log.
    pub fn wait_for_status(
        &self,
        what: &str,
        mut condition: impl FnMut(&Status) -> bool,
    ) -> Status {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let last = match self.try_status() {
                Ok(status) if condition(&status) => return status,
                last => last,
            };
            let exited = !alive(self.pid());
            if exited || Instant::now() >= deadline {
                panic!(
                    "{} waiting for {what}; last status: {last:#?}\nlog so far:\n{}",
                    if exited {
                        "baton exited".to_string()
                    } else {
                        format!("timed out after {PATIENCE:?}")
                    },
                    self.log_so_far().join("\n")
                );
            }
            wait_a_little();
        }
    }

    /// Waits until the upgrade in progress is in `phase` (the start of
    /// `upgrade_phase`: `handing off`, `migrating 1 -> 2`, `idle`…). Only
    /// for a phase that something holds: a passing one may be missed.
    pub fn wait_for_phase(&self, phase: &str) -> Status {
        self.wait_for_status(&format!("upgrade phase {phase:?}"), |s| {
            s.upgrade_phase.starts_with(phase)
        })
    }

    /// Waits until the upgrade in progress has reached `phase` or a later
    /// one (`loading` < `starting` < `handing off` < `migrating` <
    /// `forwarding`): for a phase that may pass quickly while the one
    /// after it is held.
    pub fn wait_for_phase_reached(&self, phase: &str) -> Status {
        let wanted = phase_rank(phase).unwrap_or_else(|| panic!("no upgrade phase {phase:?}"));
        self.wait_for_status(&format!("upgrade phase {phase:?} or later"), |s| {
            phase_rank(&s.upgrade_phase).is_some_and(|now| now >= wanted)
        })
    }

    /// Waits until generation `generation` is alive in `phase` (`serving`,
    /// `handing off`, `taking over`, `draining`).
    pub fn wait_for_generation(&self, generation: u32, phase: &str) -> Status {
        self.wait_for_status(&format!("generation {generation} {phase}"), |s| {
            s.generations
                .iter()
                .any(|g| g.generation == generation && g.phase == phase)
        })
    }

    /// Waits until `finished` upgrades (and rollbacks) have ended, however
    /// they ended, and the supervisor is idle; the status then has the
    /// last one's report and every count.
    pub fn wait_for_upgrades(&self, finished: u64) -> Status {
        self.wait_for_status(&format!("{finished} upgrades ended"), |s| {
            s.upgrades.finished() >= finished && s.upgrade_phase == "idle"
        })
    }

    /// Waits until the sample `series` of `/metrics` (exactly as printed:
    /// `name{labels}`, or `name` alone) satisfies `condition`; returns its
    /// value. A missing sample is `None`. Needs an `[admin]` address.
    pub fn wait_for_metric(
        &self,
        series: &str,
        what: &str,
        mut condition: impl FnMut(Option<f64>) -> bool,
    ) -> Option<f64> {
        let admin = self.admin_addr();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let scrape = http(admin, "GET", "/metrics").body;
            let value = sample(&scrape, series);
            if condition(value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {series} to be {what}; last scrape:\n{scrape}"
            );
            wait_a_little();
        }
    }

    /// The pid of generation `generation`, from the status.
    pub fn pid_of(&self, generation: u32) -> u32 {
        let status = self.status();
        status
            .generations
            .iter()
            .find(|g| g.generation == generation)
            .map(|g| g.pid)
            .unwrap_or_else(|| panic!("no generation {generation}: {status:#?}"))
    }
}
