//! `baton intercept install|remove`: the netfilter rules that send a
//! network namespace's TCP (and, with TPROXY, UDP) traffic through baton — what Istio's
//! `istio-iptables` and MOSN's init container do for a sidecar — written
//! as one nftables table, `inet baton`, for IPv4 and IPv6 at once.
//!
//! # The rules
//!
//! ```text
//! table inet baton
//!   chain output      TCP (and UDP) the namespace's processes send out
//!     return: not TCP (nor UDP with --outbound-udp-port); sent by an
//!             excluded owner (uid, gid: baton's own upstream connections
//!             and flows, which must not loop) or, in redirect mode, with
//!             the excluded mark; to loopback; to an excluded range or
//!             port (TCP's and UDP's)
//!     redirect mode (nat hook): redirect to :<outbound-port>
//!     tproxy mode (route hook): mark it (connections and flows started
//!             here, not the replies of accepted ones), so `ip rule
//!             fwmark <mark> lookup <table>` and `ip route local default
//!             dev lo table <table>` (both families) route it back in
//!             through `lo`
//!   chain prerouting  redirect mode (nat hook): TCP arriving to the
//!     application's ports (or all but excluded) → :<inbound-port>
//!   chain divert      tproxy mode (filter hook, priority mangle): marked
//!     outbound UDP back in on `lo` → `tproxy to :<outbound-udp-port>`;
//!     packets of TCP connections already on a transparent socket,
//!     accepted; marked outbound TCP back in on `lo` → `tproxy to
//!     :<outbound-port>`; TCP arriving to the application's ports →
//!     `tproxy to :<inbound-port>`, unchanged
//! ```
//!
//! With redirect (NAT) a listener reads the original destination with
//! `SO_ORIGINAL_DST` (`original_destination = "redirect"`); with TPROXY
//! nothing is rewritten, and the listener (`original_destination =
//! "tproxy"`, bound with `IP_TRANSPARENT`) sees the original destination
//! as the connection's local address and, inbound, the real client.
//! IPv4 and IPv6 are one table (`inet`); a listener per family can have
//! its own port (`--outbound-port-v6`, `--inbound-port-v6`).
//!
//! # UDP
//!
//! `--outbound-udp-port` (and `--outbound-udp-port-v6`) sends outbound
//! UDP not excluded — DNS to port 53 included — to a udp listener with
//! `original_destination = "tproxy"`, with the same exclusions, mark and
//! routing table as TCP. TPROXY only: a datagram rewritten by NAT leaves
//! no original destination to read back (`SO_ORIGINAL_DST` needs a
//! connection), so redirect mode refuses the option. The UDP rule comes
//! first in `divert`, before the rule that accepts packets of transparent
//! sockets: baton's per-flow reply sockets are transparent and bound to
//! the original destinations, and a client's later datagrams must still
//! be diverted to the listener (TPROXY's own socket lookup passes those
//! unconnected sockets by), not delivered to them. baton's replies come
//! from those reply sockets as root, which `--owner-uid` leaves alone.
//!
//! # Idempotent, and removable
//!
//! `install` replaces the whole table in one nftables transaction
//! (`table inet baton` creates it if missing, `delete table` empties it,
//! then it is written again), so running it twice, or with new options,
//! leaves exactly one rule set; the `ip rule`s of tproxy mode are added
//! only where missing. `remove` deletes the table and those rules and
//! routes, and succeeds when there is nothing to remove. `--dry-run`
//! prints what would run instead of running it; `--netns NAME` runs it in
//! that namespace (`ip netns exec`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use baton_config::filter::Cidr;

/// How inbound traffic reaches the inbound listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// NAT: the listener reads the original destination with
    /// `SO_ORIGINAL_DST`.
    Redirect,
    /// TPROXY: no NAT; the listener (with `IP_TRANSPARENT`) sees it as
    /// its local address.
    Tproxy,
}

/// What `install` sets up (and `remove` takes down).
#[derive(Debug, Clone, clap::Args)]
pub struct Plan {
    /// How inbound traffic is sent to the inbound listener.
    #[arg(long, value_enum, default_value = "redirect")]
    pub mode: Mode,
    /// The outbound listener's port: every outbound TCP connection not
    /// excluded goes there. Without it, outbound traffic is left alone.
    #[arg(long, value_name = "PORT")]
    pub outbound_port: Option<u16>,
    /// The outbound listener for IPv6, when it is another one (a listener
    /// on `[::]` with its own port); default: `--outbound-port`.
    #[arg(long, value_name = "PORT")]
    pub outbound_port_v6: Option<u16>,
    /// tproxy mode: the outbound udp listener's port (a listener with
    /// `original_destination = "tproxy"`): every outbound UDP datagram
    /// not excluded goes there. Without it, UDP is left alone.
    #[arg(long, value_name = "PORT")]
    pub outbound_udp_port: Option<u16>,
    /// The outbound udp listener for IPv6, when it is another one;
    /// default: `--outbound-udp-port`.
    #[arg(long, value_name = "PORT")]
    pub outbound_udp_port_v6: Option<u16>,
    /// The inbound listener's port. Without it, inbound traffic is left
    /// alone.
    #[arg(long, value_name = "PORT")]
    pub inbound_port: Option<u16>,
    /// The inbound listener for IPv6, when it is another one; default:
    /// `--inbound-port`.
    #[arg(long, value_name = "PORT")]
    pub inbound_port_v6: Option<u16>,
    /// The application's ports whose inbound traffic goes to the inbound
    /// listener (comma-separated, or `*` for all but the excluded).
    #[arg(long, value_name = "PORTS", default_value = "*")]
    pub inbound_ports: String,
    /// Inbound ports never intercepted (comma-separated).
    #[arg(long, value_name = "PORTS", value_delimiter = ',')]
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound destination ports never intercepted (comma-separated).
    #[arg(long, value_name = "PORTS", value_delimiter = ',')]
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destination ranges never intercepted (repeatable, or
    /// comma-separated; IPv4 or IPv6).
    #[arg(long = "exclude-cidr", value_name = "CIDR", value_delimiter = ',')]
    pub exclude_cidrs: Vec<String>,
    /// Traffic of processes running as this uid is never intercepted:
    /// baton's own (repeatable).
    #[arg(long = "owner-uid", value_name = "UID")]
    pub owner_uids: Vec<u32>,
    /// Traffic of processes in this group is never intercepted.
    #[arg(long = "owner-gid", value_name = "GID")]
    pub owner_gids: Vec<u32>,
    /// Packets with this mark are never intercepted outbound; in tproxy
    /// mode it also marks diverted inbound packets for the routing rule.
    #[arg(long, value_name = "MARK", default_value_t = 1337)]
    pub mark: u32,
    /// tproxy mode: the routing table that sends marked packets to the
    /// local stack.
    #[arg(long, value_name = "TABLE", default_value_t = 133)]
    pub route_table: u32,
}

/// Why a plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
    #[error("run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// The table every rule lives in.
const TABLE: &str = "inet baton";

impl Plan {
    /// Checks the options against each other.
    pub fn validate(&self) -> Result<(), PlanError> {
        let invalid = |m: String| Err(PlanError::Invalid(m));
        if self.outbound_port.is_none()
            && self.inbound_port.is_none()
            && self.outbound_udp_port.is_none()
        {
            return invalid(
                "nothing to intercept: give --outbound-port, --inbound-port, --outbound-udp-port or some of them".into(),
            );
        }
        if self.outbound_udp_port_v6.is_some() && self.outbound_udp_port.is_none() {
            return invalid("--outbound-udp-port-v6 needs --outbound-udp-port".into());
        }
        if self.outbound_udp_port.is_some() && self.mode != Mode::Tproxy {
            return invalid(
                "--outbound-udp-port needs --mode tproxy: NAT (redirect) leaves a datagram \
                 no original destination to read back (SO_ORIGINAL_DST needs a connection)"
                    .into(),
            );
        }
        if (self.outbound_port.is_some() || self.outbound_udp_port.is_some())
            && self.owner_uids.is_empty()
            && self.owner_gids.is_empty()
            && (self.mark == 0 || self.mode == Mode::Tproxy)
        {
            return invalid(
                "outbound interception needs a way to tell baton's own traffic \
                 (--owner-uid, --owner-gid, or --mark in redirect mode), or it would loop"
                    .into(),
            );
        }
        self.cidrs()?;
        self.inbound_port_list()?;
        if self.mode == Mode::Tproxy && self.mark == 0 {
            return invalid("tproxy mode needs a --mark".into());
        }
        Ok(())
    }

    fn cidrs(&self) -> Result<Vec<Cidr>, PlanError> {
        self.exclude_cidrs
            .iter()
            .map(|c| {
                c.parse::<Cidr>()
                    .map_err(|e| PlanError::Invalid(e.to_string()))
            })
            .collect()
    }

    /// `None` for all ports.
    fn inbound_port_list(&self) -> Result<Option<Vec<u16>>, PlanError> {
        let text = self.inbound_ports.trim();
        if text == "*" {
            return Ok(None);
        }
        text.split(',')
            .map(|p| {
                p.trim().parse::<u16>().map_err(|_| {
                    PlanError::Invalid(format!("{p:?} in --inbound-ports is not a port"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The nftables script `install` runs (`nft -f -`).
    pub fn nft_install(&self) -> Result<String, PlanError> {
        self.validate()?;
        let mark = format!("{:#x}", self.mark);
        let mut out = String::new();
        let _ = writeln!(out, "table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{");
        let udp = self.outbound_udp_port.is_some();
        if self.outbound_port.is_some() || udp {
            let (hook, last) = match (self.mode, self.outbound_port) {
                (Mode::Redirect, Some(port)) => (
                    "type nat hook output priority -100",
                    per_family(port, self.outbound_port_v6, "meta l4proto tcp ", |to| {
                        format!("redirect to :{to}")
                    }),
                ),
                // validate() refuses UDP in redirect mode.
                (Mode::Redirect, None) => ("type nat hook output priority -100", String::new()),
                // Marked, the packet is routed back in through `lo`
                // (`ip rule`), where `divert` hands it to the listener.
                // Only connections made here: a reply (a SYN-ACK of an
                // inbound connection, sent before any socket owns it, so
                // no owner rule can tell) must leave as it is.
                (Mode::Tproxy, tcp) => {
                    let mut last = "\t\tct direction reply return\n".to_string();
                    for (on, proto) in [(tcp.is_some(), "tcp"), (udp, "udp")] {
                        if on {
                            let _ = writeln!(last, "\t\tmeta l4proto {proto} meta mark set {mark}");
                        }
                    }
                    ("type route hook output priority mangle", last)
                }
            };
            let protocols = match (self.outbound_port.is_some(), udp) {
                (true, true) => "{ tcp, udp }",
                (false, true) => "udp",
                _ => "tcp",
            };
            let _ = writeln!(
                out,
                "\tchain output {{\n\t\t{hook}; policy accept;\n\t\tmeta l4proto != {protocols} return"
            );
            out.push_str(&self.outbound_exclusions()?);
            let _ = writeln!(out, "{last}\t}}");
        }
        let inbound = self.inbound_port.map(|port| -> Result<_, PlanError> {
            let port_v6 = self.inbound_port_v6.unwrap_or(port);
            let matched = match self.inbound_port_list()? {
                Some(list) => format!("tcp dport {} ", set(&list)),
                None => "meta l4proto tcp ".to_string(),
            };
            let mut excluded = self.exclude_inbound_ports.clone();
            // The inbound listener's own ports, reached directly, are
            // baton's: never diverted to themselves.
            excluded.push(port);
            if port_v6 != port {
                excluded.push(port_v6);
            }
            let exclusions = format!("\t\ttcp dport {} return\n", set(&excluded));
            Ok((port, port_v6, matched, exclusions))
        });
        match self.mode {
            Mode::Redirect => {
                if let Some(inbound) = inbound {
                    let (port, port_v6, matched, exclusions) = inbound?;
                    let _ = writeln!(
                        out,
                        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
                         \t\tmeta l4proto != tcp return\n\t\tiifname \"lo\" return\n{exclusions}{}\t}}",
                        per_family(port, Some(port_v6), &matched, |to| format!(
                            "redirect to :{to}"
                        ))
                    );
                }
            }
            Mode::Tproxy => {
                let tproxy = |matched: &str, v4: u16, v6: u16| {
                    format!(
                        "\t\t{matched}meta nfproto ipv4 tproxy ip to :{v4} meta mark set {mark} accept\n\
                         \t\t{matched}meta nfproto ipv6 tproxy ip6 to :{v6} meta mark set {mark} accept\n"
                    )
                };
                let _ = writeln!(
                    out,
                    "\tchain divert {{\n\t\ttype filter hook prerouting priority mangle; policy accept;"
                );
                if let Some(port) = self.outbound_udp_port {
                    out.push_str(&tproxy(
                        &format!("iifname \"lo\" meta mark {mark} meta l4proto udp "),
                        port,
                        self.outbound_udp_port_v6.unwrap_or(port),
                    ));
                }
                let _ = writeln!(
                    out,
                    "\t\tmeta l4proto != tcp return\n\t\tsocket transparent 1 meta mark set {mark} accept"
                );
                if let Some(port) = self.outbound_port {
                    let port_v6 = self.outbound_port_v6.unwrap_or(port);
                    out.push_str(&tproxy(
                        &format!("iifname \"lo\" meta mark {mark} meta l4proto tcp "),
                        port,
                        port_v6,
                    ));
                }
                out.push_str("\t\tiifname \"lo\" return\n");
                if let Some(inbound) = inbound {
                    let (port, port_v6, matched, exclusions) = inbound?;
                    out.push_str(&exclusions);
                    out.push_str(&tproxy(&matched, port, port_v6));
                }
                out.push_str("\t}\n");
            }
        }
        out.push_str("}\n");
        Ok(out)
    }

    /// The `return`s of outbound traffic that is not intercepted: baton's
    /// own (by owner, or by mark in redirect mode), loopback, excluded
    /// ranges and ports.
    fn outbound_exclusions(&self) -> Result<String, PlanError> {
        let mut out = String::new();
        if !self.owner_uids.is_empty() {
            let _ = writeln!(out, "\t\tmeta skuid {} return", set(&self.owner_uids));
        }
        if !self.owner_gids.is_empty() {
            let _ = writeln!(out, "\t\tmeta skgid {} return", set(&self.owner_gids));
        }
        // In tproxy mode the mark is the routing mark this chain sets.
        if self.mark != 0 && self.mode == Mode::Redirect {
            let _ = writeln!(out, "\t\tmeta mark {:#x} return", self.mark);
        }
        out.push_str("\t\toifname \"lo\" return\n\t\tip daddr 127.0.0.0/8 return\n\t\tip6 daddr ::1 return\n");
        let cidrs = self.cidrs()?;
        let (v4, v6): (Vec<Cidr>, Vec<Cidr>) = cidrs.iter().partition(|c| c.is_ipv4());
        if !v4.is_empty() {
            let _ = writeln!(out, "\t\tip daddr {} return", set(&v4));
        }
        if !v6.is_empty() {
            let _ = writeln!(out, "\t\tip6 daddr {} return", set(&v6));
        }
        if !self.exclude_outbound_ports.is_empty() {
            let ports = set(&self.exclude_outbound_ports);
            if self.outbound_port.is_some() {
                let _ = writeln!(out, "\t\ttcp dport {ports} return");
            }
            if self.outbound_udp_port.is_some() {
                let _ = writeln!(out, "\t\tudp dport {ports} return");
            }
        }
        Ok(out)
    }

    /// The `ip` commands `install` runs after the table (tproxy mode's
    /// routing of marked packets to the local stack), each as the words
    /// after `ip`.
    pub fn ip_install(&self) -> Vec<Vec<String>> {
        if self.mode != Mode::Tproxy {
            return Vec::new();
        }
        let (mark, table) = (self.mark.to_string(), self.route_table.to_string());
        let mut out = Vec::new();
        for (family, local) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
            out.push(words(&[
                family, "rule", "add", "fwmark", &mark, "lookup", &table,
            ]));
            out.push(words(&[
                family, "route", "replace", "local", local, "dev", "lo", "table", &table,
            ]));
        }
        out
    }

    /// The `ip` commands `remove` runs (each may find nothing to delete).
    pub fn ip_remove(&self) -> Vec<Vec<String>> {
        let (mark, table) = (self.mark.to_string(), self.route_table.to_string());
        let mut out = Vec::new();
        for family in ["-4", "-6"] {
            out.push(words(&[
                family, "rule", "del", "fwmark", &mark, "lookup", &table,
            ]));
            out.push(words(&[family, "route", "flush", "table", &table]));
        }
        out
    }
}

/// The rule(s) sending `matched` traffic to `port` with `action(port)`:
/// one rule, or one per family when IPv6 has a port of its own.
fn per_family(port: u16, v6: Option<u16>, matched: &str, action: impl Fn(u16) -> String) -> String {
    match v6 {
        Some(v6) if v6 != port => format!(
            "\t\tmeta nfproto ipv4 {matched}{}\n\t\tmeta nfproto ipv6 {matched}{}\n",
            action(port),
            action(v6)
        ),
        _ => format!("\t\t{matched}{}\n", action(port)),
    }
}

/// The script `remove` runs: the table goes, if it is there.
pub fn nft_remove() -> String {
    format!("table {TABLE}\ndelete table {TABLE}\n")
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_string()).collect()
}

/// An nftables anonymous set, `{ a, b }`.
fn set<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("{{ {} }}", items.join(", "))
}

/// Where the commands run.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// A named network namespace (`ip netns`), else the caller's.
    pub netns: Option<String>,
}

impl Target {
    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    fn run(&self, program: &str, args: &[String], stdin: Option<&str>) -> Result<(), PlanError> {
        let shown = format!("{program} {}", args.join(" "));
        let mut command = self.command(program);
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| PlanError::Spawn {
            command: shown.clone(),
            source,
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .map_err(|source| PlanError::Spawn {
                    command: shown.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| PlanError::Spawn {
                command: shown.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(PlanError::Failed {
                command: shown,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Whether `ip rule` already has a rule for `mark` (so `install` does
    /// not add a second one).
    fn has_rule(&self, family: &str, mark: u32) -> bool {
        let mut command = self.command("ip");
        command.args([family, "rule", "show", "fwmark", &mark.to_string()]);
        command
            .output()
            .map(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
            .unwrap_or(false)
    }
}

/// What `install` or `remove` does, as text: `--dry-run` prints it.
pub fn describe(script: &str, ip: &[Vec<String>]) -> String {
    let mut out = format!("nft -f - <<'EOF'\n{script}EOF\n");
    for words in ip {
        let _ = writeln!(out, "ip {}", words.join(" "));
    }
    out
}

/// Installs the rules in `target`.
pub fn install(plan: &Plan, target: &Target) -> Result<(), PlanError> {
    let script = plan.nft_install()?;
    target.run("nft", &words(&["-f", "-"]), Some(&script))?;
    for step in plan.ip_install() {
        let family = step[0].as_str();
        if step[1] == "rule" && target.has_rule(family, plan.mark) {
            continue;
        }
        target.run("ip", &step, None)?;
    }
    Ok(())
}

/// Removes the rules from `target`; nothing there is not an error.
pub fn remove(plan: &Plan, target: &Target) -> Result<(), PlanError> {
    target.run("nft", &words(&["-f", "-"]), Some(&nft_remove()))?;
    for step in plan.ip_remove() {
        let family = step[0].as_str();
        if step[1] == "rule" {
            // Every copy, however many an older install left.
            while target.has_rule(family, plan.mark) {
                target.run("ip", &step, None)?;
            }
        } else {
            // An empty or missing table is what we want.
            let _ = target.run("ip", &step, None);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        plan: Plan,
    }

    fn plan(args: &[&str]) -> Plan {
        Cli::try_parse_from(std::iter::once("intercept").chain(args.iter().copied()))
            .unwrap()
            .plan
    }

    #[test]
    fn redirect_mode_writes_both_chains_with_every_exclusion() {
        let script = plan(&[
            "--outbound-port",
            "15001",
            "--inbound-port",
            "15006",
            "--inbound-ports",
            "8080,9090",
            "--exclude-cidr",
            "10.9.0.0/16,2001:db8::/32",
            "--exclude-outbound-ports",
            "22",
            "--owner-uid",
            "1337",
        ])
        .nft_install()
        .unwrap();
        let expected = "table inet baton\ndelete table inet baton\ntable inet baton {\n\
            \tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\
            \t\tmeta l4proto != tcp return\n\t\tmeta skuid { 1337 } return\n\
            \t\tmeta mark 0x539 return\n\t\toifname \"lo\" return\n\
            \t\tip daddr 127.0.0.0/8 return\n\t\tip6 daddr ::1 return\n\
            \t\tip daddr { 10.9.0.0/16 } return\n\t\tip6 daddr { 2001:db8::/32 } return\n\
            \t\ttcp dport { 22 } return\n\t\tmeta l4proto tcp redirect to :15001\n\t}\n\
            \tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
            \t\tmeta l4proto != tcp return\n\t\tiifname \"lo\" return\n\
            \t\ttcp dport { 15006 } return\n\
            \t\ttcp dport { 8080, 9090 } redirect to :15006\n\t}\n}\n";
        assert_eq!(script, expected);
    }

    #[test]
    fn tproxy_mode_diverts_inbound_and_routes_the_mark_locally() {
        let p = plan(&[
            "--mode",
            "tproxy",
            "--inbound-port",
            "15006",
            "--exclude-inbound-ports",
            "22",
        ]);
        let script = p.nft_install().unwrap();
        assert!(!script.contains("chain output"), "{script}");
        assert!(
            script.contains("meta nfproto ipv4 tproxy ip to :15006 meta mark set 0x539 accept"),
            "{script}"
        );
        assert!(
            script.contains("meta nfproto ipv6 tproxy ip6 to :15006 meta mark set 0x539 accept"),
            "{script}"
        );
        assert!(
            script.contains("tcp dport { 22, 15006 } return"),
            "{script}"
        );
        let ip: Vec<String> = p.ip_install().iter().map(|w| w.join(" ")).collect();
        assert_eq!(
            ip,
            [
                "-4 rule add fwmark 1337 lookup 133",
                "-4 route replace local 0.0.0.0/0 dev lo table 133",
                "-6 rule add fwmark 1337 lookup 133",
                "-6 route replace local ::/0 dev lo table 133",
            ]
        );
    }

    #[test]
    fn tproxy_mode_marks_outbound_traffic_back_in_to_the_outbound_listener() {
        let p = plan(&[
            "--mode",
            "tproxy",
            "--outbound-port",
            "15001",
            "--owner-uid",
            "0",
        ]);
        let script = p.nft_install().unwrap();
        for rule in [
            "type route hook output priority mangle",
            "meta skuid { 0 } return",
            "meta l4proto tcp meta mark set 0x539\n",
            "iifname \"lo\" meta mark 0x539 meta l4proto tcp meta nfproto ipv4 tproxy ip to :15001",
        ] {
            assert!(script.contains(rule), "{rule:?} missing from\n{script}");
        }
        // Its own routing mark is no exclusion; an owner must be given.
        assert!(!script.contains("meta mark 0x539 return"), "{script}");
        assert!(
            plan(&["--mode", "tproxy", "--outbound-port", "15001"])
                .nft_install()
                .is_err()
        );
        assert_eq!(p.ip_install().len(), 4);
    }

    #[test]
    fn tproxy_mode_diverts_outbound_udp_before_transparent_sockets_are_accepted() {
        let p = plan(&[
            "--mode",
            "tproxy",
            "--outbound-port",
            "15001",
            "--outbound-udp-port",
            "15053",
            "--outbound-udp-port-v6",
            "15054",
            "--exclude-outbound-ports",
            "22",
            "--owner-uid",
            "0",
        ]);
        let script = p.nft_install().unwrap();
        let expected = "table inet baton\ndelete table inet baton\ntable inet baton {\n\
            \tchain output {\n\t\ttype route hook output priority mangle; policy accept;\n\
            \t\tmeta l4proto != { tcp, udp } return\n\t\tmeta skuid { 0 } return\n\
            \t\toifname \"lo\" return\n\t\tip daddr 127.0.0.0/8 return\n\t\tip6 daddr ::1 return\n\
            \t\ttcp dport { 22 } return\n\t\tudp dport { 22 } return\n\
            \t\tct direction reply return\n\
            \t\tmeta l4proto tcp meta mark set 0x539\n\t\tmeta l4proto udp meta mark set 0x539\n\t}\n\
            \tchain divert {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\
            \t\tiifname \"lo\" meta mark 0x539 meta l4proto udp meta nfproto ipv4 tproxy ip to :15053 meta mark set 0x539 accept\n\
            \t\tiifname \"lo\" meta mark 0x539 meta l4proto udp meta nfproto ipv6 tproxy ip6 to :15054 meta mark set 0x539 accept\n\
            \t\tmeta l4proto != tcp return\n\t\tsocket transparent 1 meta mark set 0x539 accept\n\
            \t\tiifname \"lo\" meta mark 0x539 meta l4proto tcp meta nfproto ipv4 tproxy ip to :15001 meta mark set 0x539 accept\n\
            \t\tiifname \"lo\" meta mark 0x539 meta l4proto tcp meta nfproto ipv6 tproxy ip6 to :15001 meta mark set 0x539 accept\n\
            \t\tiifname \"lo\" return\n\t}\n}\n";
        assert_eq!(script, expected);
        // UDP alone: only UDP is marked and diverted.
        let script = plan(&[
            "--mode",
            "tproxy",
            "--outbound-udp-port",
            "15053",
            "--owner-uid",
            "0",
        ])
        .nft_install()
        .unwrap();
        assert!(script.contains("meta l4proto != udp return"), "{script}");
        assert!(!script.contains("meta l4proto tcp"), "{script}");
        assert!(
            script.contains("udp meta nfproto ipv6 tproxy ip6 to :15053 "),
            "{script}"
        );
    }

    #[test]
    fn udp_interception_needs_tproxy_and_an_owner() {
        let refused = |args: &[&str]| plan(args).nft_install().unwrap_err().to_string();
        let redirect = refused(&["--outbound-udp-port", "15053", "--owner-uid", "0"]);
        assert!(redirect.contains("needs --mode tproxy"), "{redirect}");
        let ownerless = refused(&["--mode", "tproxy", "--outbound-udp-port", "15053"]);
        assert!(ownerless.contains("would loop"), "{ownerless}");
        let v6 = refused(&[
            "--mode",
            "tproxy",
            "--outbound-port",
            "1",
            "--outbound-udp-port-v6",
            "2",
            "--owner-uid",
            "0",
        ]);
        assert!(v6.contains("needs --outbound-udp-port"), "{v6}");
    }

    #[test]
    fn each_family_can_have_its_own_listener() {
        let script = plan(&[
            "--outbound-port",
            "15001",
            "--outbound-port-v6",
            "15011",
            "--inbound-port",
            "15006",
            "--inbound-port-v6",
            "15016",
            "--owner-uid",
            "0",
        ])
        .nft_install()
        .unwrap();
        for rule in [
            "meta nfproto ipv4 meta l4proto tcp redirect to :15001",
            "meta nfproto ipv6 meta l4proto tcp redirect to :15011",
            "meta nfproto ipv4 meta l4proto tcp redirect to :15006",
            "meta nfproto ipv6 meta l4proto tcp redirect to :15016",
            "tcp dport { 15006, 15016 } return",
        ] {
            assert!(script.contains(rule), "{rule:?} missing from\n{script}");
        }
    }

    #[test]
    fn plans_that_would_loop_or_say_nothing_are_refused() {
        let refused = |args: &[&str]| plan(args).nft_install().unwrap_err().to_string();
        assert!(refused(&[]).contains("nothing to intercept"));
        assert!(refused(&["--outbound-port", "1", "--mark", "0"]).contains("would loop"));
        assert!(
            refused(&["--inbound-port", "1", "--inbound-ports", "80,x"]).contains("not a port")
        );
        assert!(
            refused(&["--outbound-port", "1", "--exclude-cidr", "10.0.0.0/33"])
                .contains("not an address range")
        );
    }
}
