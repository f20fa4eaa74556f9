//! What the bench reads from /proc around a measured window: CPU time of
//! the load side and of the proxy's process tree, how busy each core was,
//! and the memory of the proxy's process tree.
//!
//! CPU is in clock ticks (100 per second here): over a window of seconds
//! at tens of thousands of requests per second, a tick is a fraction of a
//! percent of the proxy's time. The load side is the bench itself (with
//! the load generators it has waited for: wrk, loadgen and iperf3 clients
//! are its children, counted once reaped) and the servers it started (the
//! origin, the iperf3 server, the upstream). The proxy is its whole tree:
//! baton's supervisor and workers, nginx's master and workers, HAProxy's
//! master and worker — including old workers that exited after a reload,
//! which their root has reaped.

use tokio::time::Instant;

use crate::cpu;

/// CPU counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    bench: u64,
    servers: u64,
    proxy: Option<u64>,
    /// Busy and total ticks per core.
    cores: Vec<(u64, u64)>,
}

/// Counters now. `servers` are the load side's long-lived processes
/// (trees), `proxy` the proxy's root.
pub fn snapshot(servers: &[u32], proxy: Option<u32>) -> Snapshot {
    let own = cpu::process_ticks(std::process::id());
    Snapshot {
        at: Instant::now(),
        bench: own.map_or(0, |t| t.own + t.reaped),
        servers: servers.iter().filter_map(|&p| cpu::tree_ticks(p)).sum(),
        proxy: proxy.and_then(cpu::tree_ticks),
        cores: cpu::core_ticks(),
    }
}

/// CPU use over a window, in cores' worth (1.0 = one core busy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub seconds: f64,
    /// The bench, its load generators and its servers.
    pub load: f64,
    /// The proxy's process tree (`None` for a direct run).
    pub proxy: Option<f64>,
    /// The busy share (0..=1) of the load CPUs, whoever used them.
    pub load_cores_busy: f64,
    /// Busy time on any core that was none of the above: other work on
    /// the machine (and a little kernel time not charged to a process).
    pub other: f64,
}

impl Usage {
    /// The proxy's CPU time per request, µs.
    pub fn proxy_us_per(&self, requests: u64) -> Option<f64> {
        let proxy = self.proxy?;
        (requests > 0).then(|| proxy * self.seconds / requests as f64 * 1e6)
    }
}

/// Usage between `a` and `b`; `load_cpus` are the indexes of the load
/// side's cores.
pub fn usage(a: &Snapshot, b: &Snapshot, load_cpus: &[usize]) -> Usage {
    let seconds = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let hz = cpu::ticks_per_second() as f64;
    let per_core = |ticks: u64| ticks as f64 / hz / seconds;
    let load = (b.bench + b.servers).saturating_sub(a.bench + a.servers);
    let proxy = match (a.proxy, b.proxy) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x)),
        _ => None,
    };
    let delta = |i: usize| {
        let (Some(x), Some(y)) = (a.cores.get(i), b.cores.get(i)) else {
            return (0, 0);
        };
        (y.0.saturating_sub(x.0), y.1.saturating_sub(x.1))
    };
    let all_busy: u64 = (0..b.cores.len()).map(|i| delta(i).0).sum();
    let (load_busy, load_total) = load_cpus
        .iter()
        .map(|&i| delta(i))
        .fold((0, 0), |(b, t), (db, dt)| (b + db, t + dt));
    Usage {
        seconds,
        load: per_core(load),
        proxy: proxy.map(per_core),
        load_cores_busy: if load_total == 0 {
            0.0
        } else {
            load_busy as f64 / load_total as f64
        },
        other: per_core(all_busy.saturating_sub(load + proxy.unwrap_or(0))),
    }
}

/// Resident memory of a process tree, kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS: everything resident, file-backed pages (the binary, shared
    /// libraries) included.
    pub rss_kb: u64,
    /// RssAnon: anonymous pages (heap, stacks): what connections cost.
    pub anon_kb: u64,
}

/// VmRSS and RssAnon of one `/proc/<pid>/status` text.
pub fn parse_status_memory(status: &str) -> Option<Memory> {
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        line.trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kb: kb("VmRSS")?,
        anon_kb: kb("RssAnon")?,
    })
}

/// The sum over `root` and its live children (every proxy here is at
/// most two levels deep).
pub fn tree_memory(root: u32) -> Option<Memory> {
    let read = |pid: u32| {
        parse_status_memory(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    };
    let mut total = read(root)?;
    for child in cpu::children_of(root) {
        if let Some(m) = read(child) {
            total.rss_kb += m.rss_kb;
            total.anon_kb += m.anon_kb;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_splits_the_window_between_load_proxy_and_others() {
        let hz = cpu::ticks_per_second();
        let a = Snapshot {
            at: Instant::now(),
            bench: 10,
            servers: 5,
            proxy: Some(100),
            cores: vec![(1000, 2000), (500, 2000)],
        };
        let b = Snapshot {
            at: a.at + std::time::Duration::from_secs(2),
            bench: 10 + hz,
            servers: 5 + hz / 2,
            proxy: Some(100 + 2 * hz * 9 / 10),
            cores: vec![
                (1000 + 2 * hz * 95 / 100, 2000 + 2 * hz),
                (500 + 2 * hz, 2000 + 2 * hz),
            ],
        };
        let u = usage(&a, &b, &[0]);
        assert!((u.load - 0.75).abs() < 0.01, "{u:?}");
        assert_eq!(u.proxy.map(|p| (p * 100.0).round()), Some(90.0));
        assert!((u.load_cores_busy - 0.95).abs() < 0.01, "{u:?}");
        assert!((u.other - 0.3).abs() < 0.01, "{u:?}");
        // 0.9 of a core for 2 s over 100,000 requests: 18 µs each.
        assert!((u.proxy_us_per(100_000).unwrap() - 18.0).abs() < 0.01);
        assert_eq!(u.proxy_us_per(0), None);
    }

    #[test]
    fn memory_of_a_status_file() {
        let status = "Name:\tbaton-worker\nVmPeak:\t  100 kB\nVmRSS:\t   12708 kB\n\
                      RssAnon:\t    2228 kB\nRssFile:\t 10480 kB\n";
        assert_eq!(
            parse_status_memory(status),
            Some(Memory {
                rss_kb: 12_708,
                anon_kb: 2_228
            })
        );
        assert_eq!(parse_status_memory("Name:\tx\n"), None);
    }
}
