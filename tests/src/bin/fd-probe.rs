//! Test helper: stands in for the worker binary, writes the fds it
//! inherited to `$FD_PROBE_OUT`, then execs the real worker
//! (`$FD_PROBE_EXEC`) with the same environment, so the supervisor sees a
//! normal worker.

use std::os::unix::process::CommandExt;

fn main() {
    // Read the directory listing first: the iterator's own fd is the only
    // one opened here, and it is filtered out below by checking which
    // numbers are still open afterwards.
    let listed: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => std::process::exit(3),
    };
    let mut open: Vec<i32> = listed
        .into_iter()
        .filter(|fd| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok())
        .collect();
    open.sort_unstable();
    let described: Vec<String> = open
        .iter()
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{fd} {target}")
        })
        .collect();
    let (Some(out), Some(exec)) = (
        std::env::var_os("FD_PROBE_OUT"),
        std::env::var_os("FD_PROBE_EXEC"),
    ) else {
        std::process::exit(2);
    };
    if std::fs::write(out, described.join("\n")).is_err() {
        std::process::exit(4);
    }
    let error = std::process::Command::new(exec)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("fd-probe: exec failed: {error}");
    std::process::exit(5);
}
