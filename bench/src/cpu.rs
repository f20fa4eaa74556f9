//! CPU accounting of processes and cores, and CPU pinning, from `/proc`.
//!
//! A proxy benchmark on a small machine has to say who used which core:
//! the load generator and its server share one core, the proxy has the
//! other, and a figure is only meaningful once it is known which of the
//! two ran out first. Times are in clock ticks (`USER_HZ`, 100 per second
//! here), the unit of both `/proc/stat` and `/proc/<pid>/stat`; the kernel
//! samples them at each tick, so a window of seconds is needed for a
//! share to be good to a percent.

use std::io;
use std::path::Path;

/// Clock ticks per second, the unit of every figure here.
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// CPU time of one process, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessTicks {
    pub ppid: u32,
    /// utime + stime of all its threads.
    pub own: u64,
    /// cutime + cstime: its children that exited and were waited for.
    pub reaped: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<ProcessTicks> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcessTicks {
        ppid: u32::try_from(field(4)?).ok()?,
        own: field(14)? + field(15)?,
        reaped: field(16)? + field(17)?,
    })
}

/// `None` once the process is gone.
pub fn process_ticks(pid: u32) -> Option<ProcessTicks> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The live children of `pid` (a scan of `/proc`: this kernel has no
/// `/proc/<pid>/task/<tid>/children`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| process_ticks(child).is_some_and(|t| t.ppid == pid))
        .collect()
}

/// CPU time of a process tree as seen from its root: the root, its
/// children that were reaped, and its live children. A child that exits
/// between two measurements moves from "live" to "reaped" without being
/// lost or counted twice, as long as the root waits for it promptly (baton's
/// supervisor reaps an old generation before it reports the upgrade).
pub fn tree_ticks(root: u32) -> Option<u64> {
    let root_ticks = process_ticks(root)?;
    let live: u64 = children_of(root)
        .into_iter()
        .filter_map(process_ticks)
        .map(|t| t.own + t.reaped)
        .sum();
    Some(root_ticks.own + root_ticks.reaped + live)
}

/// Busy and total ticks of each core, from `/proc/stat`'s `cpuN` lines.
pub fn parse_core_ticks(stat: &str) -> Vec<(u64, u64)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .filter_map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal.
            let total: u64 = fields.iter().take(8).sum();
            let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
            Some((total - idle, total))
        })
        .collect()
}

/// [`parse_core_ticks`] of the live `/proc/stat`; empty if unreadable.
pub fn core_ticks() -> Vec<(u64, u64)> {
    std::fs::read_to_string("/proc/stat")
        .map(|s| parse_core_ticks(&s))
        .unwrap_or_default()
}

/// Pins the calling process (its threads started from now on, and its
/// children) to `cpus`, as `taskset -c` would.
pub fn pin_self(cpus: &[usize]) -> io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(io::Error::from)
}

/// `Cpus_allowed_list` and `Threads` from `/proc/<pid>/status`: where a
/// process may run, and how many threads it has (a tokio runtime sizes its
/// pool from the affinity mask).
pub fn placement(pid: u32) -> Option<(String, u32)> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let value = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    Some((
        value("Cpus_allowed_list")?.to_string(),
        value("Threads")?.parse().ok()?,
    ))
}

/// The names of `pid`'s threads (`/proc/<pid>/task/*/comm`): tokio names
/// its runtime's workers `tokio-rt-worker`.
pub fn thread_names(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// `0,2-3` → `[0, 2, 3]`.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (baton (worker) 1) S 4200 4242 4200 0 -1 4194560 \
                    100 0 0 0 250 50 7 3 20 0 2 0 12345 1000 100";
        let t = parse_stat(stat).unwrap();
        assert_eq!(
            t,
            ProcessTicks {
                ppid: 4200,
                own: 300,
                reaped: 10
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn core_lines_without_the_total() {
        let stat = "cpu  10 0 10 80 0 0 0 0 0 0\n\
                    cpu0 5 0 5 40 0 0 0 0 0 0\n\
                    cpu1 5 0 5 30 10 0 0 0 0 0\n\
                    intr 1 2 3\n";
        assert_eq!(parse_core_ticks(stat), vec![(10, 50), (10, 50)]);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list("0,2-3"), Some(vec![0, 2, 3]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }
}
