//! Replies as text for a human: `baton status`, and the one line that
//! `baton upgrade|rollback` print. (`--json` prints the reply as is.)

use std::fmt::Write as _;

use super::proto::{Outcome, Status, UpgradeCounts, UpgradeReport};

/// The word for an outcome, as the CLI prints it.
pub fn outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::RolledBack => "rolled back",
        Outcome::Failed => "failed",
        Outcome::Refused => "refused",
    }
}

/// One line: what happened, why (when there is a reason), and the numbers
/// (requests lost only when there were any).
///
/// `upgrade succeeded (generation 1 -> 2, 12 migrated, 0 lost, 840 ms)`,
/// `upgrade rolled back: worker 2 not ready within 10s (generation 1 -> 2, ...)`,
/// `upgrade failed: ... (generation 1 -> 2, 0 migrated, 300 lost, 600 requests lost, 95 ms)`.
pub fn report_line(report: &UpgradeReport) -> String {
    let mut line = format!("{} {}", report.kind, outcome(report.outcome));
    if let Some(reason) = &report.reason {
        let _ = write!(line, ": {reason}");
    }
    line.push_str(" (");
    match (report.from_generation, report.to_generation) {
        (Some(from), Some(to)) => {
            let _ = write!(line, "generation {from} -> {to}, ");
        }
        (Some(generation), None) | (None, Some(generation)) => {
            let _ = write!(line, "generation {generation}, ");
        }
        (None, None) => {}
    }
    let _ = write!(line, "{} migrated, {} lost, ", report.migrated, report.lost);
    if report.requests_lost > 0 {
        let _ = write!(line, "{} requests lost, ", report.requests_lost);
    }
    let _ = write!(line, "{} ms)", report.duration_ms);
    line
}

/// The control-plane connection in one line: `connected to
/// 127.0.0.1:18000 (sotw, 2 streams), versions CDS 3, EDS 4, LDS 1, RDS 2;
/// 12 accepted, 1 rejected (last: CDS: …)`.
pub fn xds_line(xds: &super::proto::XdsStatus) -> String {
    let server = xds.server.clone().unwrap_or_else(|| xds.servers.join(", "));
    let mut line = if xds.connected {
        format!("connected to {server}")
    } else {
        format!("not connected ({server})")
    };
    let _ = write!(line, " ({}, {} streams)", xds.mode, xds.streams);
    if xds.versions.is_empty() {
        line.push_str(", nothing accepted yet");
    } else {
        let versions: Vec<String> = xds
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = write!(line, ", versions {}", versions.join(", "));
    }
    let _ = write!(
        line,
        "; {} accepted, {} rejected",
        xds.accepted, xds.rejected
    );
    if let Some(last) = &xds.last_rejection {
        let _ = write!(line, " (last: {last})");
    }
    if !xds.connected
        && let Some(e) = &xds.last_error
    {
        let _ = write!(line, "; {e}");
    }
    line
}

/// `3 requested: 2 succeeded, 0 rolled back, 0 failed, 1 refused`.
pub fn counts_line(counts: &UpgradeCounts) -> String {
    format!(
        "{} requested: {} succeeded, {} rolled back, {} failed, {} refused",
        counts.requested, counts.succeeded, counts.rolled_back, counts.failed, counts.refused
    )
}

/// `baton status` for a terminal: a few labelled lines and three tables
/// (generations, listeners, clusters' endpoints).
pub fn status_text(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "supervisor    pid {}, config {}",
        status.supervisor_pid, status.config
    );
    let _ = writeln!(
        out,
        "admin         {}",
        status.admin.as_deref().unwrap_or("none")
    );
    let _ = writeln!(out, "upgrade       {}", status.upgrade_phase);
    let _ = writeln!(
        out,
        "last upgrade  {}",
        status
            .last_upgrade
            .as_ref()
            .map_or_else(|| "none".to_string(), report_line)
    );
    let _ = writeln!(out, "upgrades      {}", counts_line(&status.upgrades));
    let _ = writeln!(out, "restarts      {}", status.worker_restarts);
    let _ = writeln!(
        out,
        "rollback to   {}",
        status.rollback_target.as_ref().map_or_else(
            || "nothing (no previous generation)".to_string(),
            |r| format!("{} with config {}", r.binary, r.config)
        )
    );
    if let Some(xds) = &status.xds {
        let _ = writeln!(out, "xds           {}", xds_line(xds));
    }

    out.push('\n');
    if status.generations.is_empty() {
        out.push_str("no worker generation\n");
    } else {
        let rows = status.generations.iter().map(|g| {
            vec![
                g.generation.to_string(),
                g.pid.to_string(),
                g.phase.clone(),
                g.connections
                    .map_or_else(|| "-".to_string(), |c| c.to_string()),
                g.binary.clone(),
            ]
        });
        table(
            &mut out,
            &["GENERATION", "PID", "PHASE", "CONNECTIONS", "BINARY"],
            rows,
        );
    }

    out.push('\n');
    if status.listeners.is_empty() {
        out.push_str("no listener\n");
    } else {
        let rows = status
            .listeners
            .iter()
            .map(|l| vec![l.name.clone(), l.address.clone()]);
        table(&mut out, &["LISTENER", "ADDRESS"], rows);
    }

    out.push('\n');
    if status.clusters.is_empty() {
        out.push_str("no cluster\n");
    } else {
        let dash = || "-".to_string();
        let rows = status.clusters.iter().flat_map(|c| {
            c.endpoints.iter().map(move |e| {
                vec![
                    c.name.clone(),
                    e.address.clone(),
                    e.weight.to_string(),
                    e.health.label().to_string(),
                    e.ejected
                        .map_or_else(dash, |ejected| if ejected { "yes" } else { "no" }.into()),
                    e.in_flight.map_or_else(dash, |n| n.to_string()),
                ]
            })
        });
        table(
            &mut out,
            &[
                "CLUSTER",
                "ENDPOINT",
                "WEIGHT",
                "HEALTH",
                "EJECTED",
                "IN FLIGHT",
            ],
            rows,
        );
    }
    out
}

/// Left-aligned columns two spaces apart, as wide as their widest cell.
fn table(out: &mut String, header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::control::proto::{
        ClusterStatus, EndpointHealth, EndpointStatus, GenerationStatus, ListenerStatus,
        ReleaseStatus,
    };

    fn report(outcome: Outcome, reason: Option<&str>) -> UpgradeReport {
        UpgradeReport {
            outcome,
            reason: reason.map(str::to_string),
            kind: "upgrade".to_string(),
            from_generation: Some(1),
            to_generation: Some(2),
            migrated: 12,
            lost: 0,
            requests_lost: 0,
            duration_ms: 840,
        }
    }

    #[test]
    fn report_lines() {
        assert_eq!(
            report_line(&report(Outcome::Succeeded, None)),
            "upgrade succeeded (generation 1 -> 2, 12 migrated, 0 lost, 840 ms)"
        );
        assert_eq!(
            report_line(&report(Outcome::RolledBack, Some("worker 2 exited"))),
            "upgrade rolled back: worker 2 exited (generation 1 -> 2, 12 migrated, 0 lost, 840 ms)"
        );
        let refused = UpgradeReport {
            to_generation: None,
            migrated: 0,
            duration_ms: 3,
            ..report(Outcome::Refused, Some("bad config"))
        };
        assert_eq!(
            report_line(&refused),
            "upgrade refused: bad config (generation 1, 0 migrated, 0 lost, 3 ms)"
        );
        let failed = UpgradeReport {
            migrated: 0,
            lost: 300,
            requests_lost: 600,
            ..report(Outcome::Failed, Some("the new generation died"))
        };
        assert_eq!(
            report_line(&failed),
            "upgrade failed: the new generation died \
             (generation 1 -> 2, 0 migrated, 300 lost, 600 requests lost, 840 ms)"
        );
    }

    #[test]
    fn status_as_text() {
        let status = Status {
            supervisor_pid: 4242,
            config: "/etc/baton/baton.toml".to_string(),
            generations: vec![
                GenerationStatus {
                    generation: 12,
                    pid: 51234,
                    binary: "/usr/bin/baton-worker".to_string(),
                    phase: "serving".to_string(),
                    connections: Some(7),
                },
                GenerationStatus {
                    generation: 11,
                    pid: 900,
                    binary: "/opt/old/baton-worker".to_string(),
                    phase: "draining".to_string(),
                    connections: None,
                },
            ],
            listeners: vec![ListenerStatus {
                name: "orders".to_string(),
                address: "0.0.0.0:7000".to_string(),
            }],
            clusters: vec![ClusterStatus {
                name: "back".to_string(),
                lb: "round_robin".to_string(),
                endpoints: vec![
                    EndpointStatus {
                        address: "10.0.0.5:9000".to_string(),
                        weight: 3,
                        health: EndpointHealth::Healthy,
                        ejected: Some(false),
                        in_flight: Some(12),
                    },
                    EndpointStatus {
                        address: "10.0.0.6:9000".to_string(),
                        weight: 1,
                        health: EndpointHealth::Unhealthy,
                        ejected: Some(true),
                        in_flight: Some(0),
                    },
                    EndpointStatus {
                        address: "10.0.0.7:9000".to_string(),
                        weight: 1,
                        health: EndpointHealth::Unknown,
                        ejected: None,
                        in_flight: None,
                    },
                ],
            }],
            admin: Some("127.0.0.1:9901".to_string()),
            admin_control: None,
            upgrade_phase: "idle".to_string(),
            last_upgrade: Some(report(Outcome::Succeeded, None)),
            upgrades: UpgradeCounts {
                requested: 4,
                succeeded: 2,
                rolled_back: 0,
                failed: 0,
                refused: 1,
            },
            worker_restarts: 3,
            rollback_target: Some(ReleaseStatus {
                binary: "/opt/old/baton-worker".to_string(),
                config: "/etc/baton/old.toml".to_string(),
            }),
            xds: None,
        };
        let expected = "\
supervisor    pid 4242, config /etc/baton/baton.toml
admin         127.0.0.1:9901
upgrade       idle
last upgrade  upgrade succeeded (generation 1 -> 2, 12 migrated, 0 lost, 840 ms)
upgrades      4 requested: 2 succeeded, 0 rolled back, 0 failed, 1 refused
restarts      3
rollback to   /opt/old/baton-worker with config /etc/baton/old.toml

GENERATION  PID    PHASE     CONNECTIONS  BINARY
12          51234  serving   7            /usr/bin/baton-worker
11          900    draining  -            /opt/old/baton-worker

LISTENER  ADDRESS
orders    0.0.0.0:7000

CLUSTER  ENDPOINT       WEIGHT  HEALTH     EJECTED  IN FLIGHT
back     10.0.0.5:9000  3       healthy    no       12
back     10.0.0.6:9000  1       unhealthy  yes      0
back     10.0.0.7:9000  1       unknown    -        -
";
        assert_eq!(status_text(&status), expected);
    }

    #[test]
    fn an_empty_status_says_so() {
        let text = status_text(&Status {
            upgrade_phase: "idle".to_string(),
            ..Status::default()
        });
        assert!(text.contains("last upgrade  none\n"), "{text}");
        assert!(text.contains("admin         none\n"), "{text}");
        assert!(
            text.contains(
                "upgrades      0 requested: 0 succeeded, 0 rolled back, 0 failed, 0 refused\n"
            ),
            "{text}"
        );
        assert!(text.contains("rollback to   nothing"), "{text}");
        assert!(text.contains("no worker generation\n"), "{text}");
        assert!(text.contains("no listener\n"), "{text}");
        assert!(text.contains("no cluster\n"), "{text}");
    }
}
