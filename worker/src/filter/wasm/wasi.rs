//! The few WASI preview 1 functions (`wasi_snapshot_preview1`, and its
//! older name `wasi_unstable`) a proxy-wasm plugin may import: what Go's
//! `GOOS=wasip1` runtime (the proxy-wasm Go SDK's plugins) calls while it
//! starts and runs, and the `proc_exit` of the AssemblyScript SDK's
//! `abort`. A plugin gets no files, no arguments, no environment and no
//! sockets: it is a filter, not a program.
//!
//! | function | what it does here |
//! |---|---|
//! | `fd_write` | fd 1 (stdout) goes to the log at info, fd 2 (stderr) at error, a line per event (a piece without its newline waits for the rest, up to [`MAX_LINE`] bytes); another fd answers `EBADF` |
//! | `fd_fdstat_get` | fds 0–2 are character devices; another fd answers `EBADF` |
//! | `fd_prestat_get`, `fd_prestat_dir_name` | `EBADF`: no directory is preopened (Go's runtime looks for them from fd 3 up until `EBADF`) |
//! | `clock_time_get` | realtime: the system clock; monotonic: nanoseconds since the worker first asked; a CPU-time clock answers `EINVAL` |
//! | `clock_res_get` | 1 ns for realtime and monotonic |
//! | `random_get` | bytes from the worker's thread-local CSPRNG (ChaCha seeded by the OS) |
//! | `args_sizes_get`, `environ_sizes_get` | 0 and 0: no arguments, no environment |
//! | `args_get`, `environ_get` | nothing to write |
//! | `sched_yield` | success: an instance has one thread and nothing to yield to |
//! | `poll_oneoff` | every clock subscription fires at once, every fd subscription gets an event with error `ENOSYS`: the host never blocks a worker thread, so a plugin that sleeps spins (spending its fuel) until its deadline. Go's runtime calls it while it prints a fatal panic (before `proc_exit`) |
//! | `proc_exit` | traps: the call in progress stops, its request is answered 500 and the instance is dropped (see `vm`), as for any trap |
//!
//! Any other WASI function a plugin imports (`fd_read`, `fd_close`,
//! `path_open`, `sock_*`, …) is linked to a stub that answers `ENOSYS`
//! (see the parent module's `linker`), so a module that links them loads
//! and fails only if it calls them.

use std::sync::LazyLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use wasmi::{Caller, Linker, Memory};

use super::host::HostState;

/// The WASI module names a plugin may import these from.
pub(crate) const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// Every function of the module docs' table with its signature, written
/// as `host::HOST`'s are; an import by one of these names with another
/// signature gets the `ENOSYS` stub.
pub(crate) const WASI: &[(&str, &str)] = &[
    ("proc_exit", "i>"),
    ("fd_write", "iiii>i"),
    ("fd_fdstat_get", "ii>i"),
    ("fd_prestat_get", "ii>i"),
    ("fd_prestat_dir_name", "iii>i"),
    ("clock_time_get", "iIi>i"),
    ("clock_res_get", "ii>i"),
    ("random_get", "ii>i"),
    ("args_sizes_get", "ii>i"),
    ("environ_sizes_get", "ii>i"),
    ("args_get", "ii>i"),
    ("environ_get", "ii>i"),
    ("sched_yield", ">i"),
    ("poll_oneoff", "iiii>i"),
];

/// WASI errno values (preview 1's `errno` enum).
pub(crate) mod errno {
    pub(crate) const SUCCESS: i32 = 0;
    pub(crate) const BADF: i32 = 8;
    pub(crate) const FAULT: i32 = 21;
    pub(crate) const INVAL: i32 = 28;
    pub(crate) const NOSYS: i32 = 52;
}

/// Why this many: a line longer than this is logged in pieces (a plugin
/// writing without newlines cannot grow the worker without end).
pub(crate) const MAX_LINE: usize = 4096;

/// Why this many: Linux's `IOV_MAX`; a call with more pieces (or poll
/// subscriptions) answers `EINVAL` (the host's work per call stays
/// bounded).
const MAX_IOVS: i32 = 1024;

/// A character device, preview 1's `filetype`.
const CHARACTER_DEVICE: u8 = 2;

type Ctx<'a> = Caller<'a, HostState>;

/// The answer of a call: `Ok` is success, `Err` an errno.
type Errno = Result<(), i32>;

fn answer(result: Errno) -> i32 {
    result.err().unwrap_or(errno::SUCCESS)
}

fn memory(c: &Ctx<'_>) -> Result<Memory, i32> {
    c.data().memory.ok_or(errno::FAULT)
}

fn slice(ptr: i32, len: usize) -> Result<std::ops::Range<usize>, i32> {
    let start = ptr as u32 as usize;
    Ok(start..start.checked_add(len).ok_or(errno::FAULT)?)
}

fn write(c: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> Errno {
    let memory = memory(c)?;
    memory
        .data_mut(&mut *c)
        .get_mut(slice(ptr, bytes.len())?)
        .ok_or(errno::FAULT)?
        .copy_from_slice(bytes);
    Ok(())
}

fn read_u32(c: &Ctx<'_>, ptr: i32) -> Result<u32, i32> {
    let memory = memory(c)?;
    let bytes = memory.data(c).get(slice(ptr, 4)?).ok_or(errno::FAULT)?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Logs what a plugin wrote to stdout or stderr (see the module docs).
fn fd_write(c: &mut Ctx<'_>, fd: i32, iovs: i32, count: i32, written_ptr: i32) -> Errno {
    let index = match fd {
        1 => 0,
        2 => 1,
        _ => return Err(errno::BADF),
    };
    if !(0..=MAX_IOVS).contains(&count) {
        return Err(errno::INVAL);
    }
    let memory = memory(c)?;
    let mut total: u32 = 0;
    for i in 0..count {
        let iov = iovs.wrapping_add(i * 8);
        let ptr = read_u32(c, iov)?;
        let len = read_u32(c, iov.wrapping_add(4))?;
        let bytes = memory
            .data(&*c)
            .get(slice(ptr as i32, len as usize)?)
            .ok_or(errno::FAULT)?
            .to_vec();
        c.data_mut().output[index].extend_from_slice(&bytes);
        total = total.wrapping_add(len);
    }
    let name = c.data().info.name.clone();
    for line in complete_lines(&mut c.data_mut().output[index]) {
        let line = String::from_utf8_lossy(&line);
        if index == 0 {
            tracing::info!(plugin = %name, stream = "stdout", "{line}");
        } else {
            tracing::error!(plugin = %name, stream = "stderr", "{line}");
        }
    }
    write(c, written_ptr, &total.to_le_bytes())
}

/// Takes the lines `pending` holds (without their newlines), and a
/// [`MAX_LINE`] piece of a longer one; the rest stays for the next write.
fn complete_lines(pending: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    loop {
        let (end, next) = match pending.iter().position(|b| *b == b'\n') {
            Some(at) if at <= MAX_LINE => (at, at + 1),
            _ if pending.len() >= MAX_LINE => (MAX_LINE, MAX_LINE),
            _ => return lines,
        };
        lines.push(pending.drain(..next).take(end).collect());
    }
}

fn fd_fdstat_get(c: &mut Ctx<'_>, fd: i32, ptr: i32) -> Errno {
    if !(0..=2).contains(&fd) {
        return Err(errno::BADF);
    }
    // fdstat: filetype u8, (pad), flags u16, (pad), rights base u64,
    // rights inheriting u64: 24 bytes.
    let mut stat = [0u8; 24];
    stat[0] = CHARACTER_DEVICE;
    // fd_write (bit 6) for stdout and stderr, fd_read (bit 1) for stdin.
    let rights: u64 = if fd == 0 { 1 << 1 } else { 1 << 6 };
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    write(c, ptr, &stat)
}

/// The monotonic clock's zero: the first time any plugin asked.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn clock_time_get(c: &mut Ctx<'_>, id: i32, ptr: i32) -> Errno {
    let nanos = match id {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        1 => EPOCH.elapsed().as_nanos(),
        _ => return Err(errno::INVAL),
    };
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    write(c, ptr, &nanos.to_le_bytes())
}

fn clock_res_get(c: &mut Ctx<'_>, id: i32, ptr: i32) -> Errno {
    if !(0..=1).contains(&id) {
        return Err(errno::INVAL);
    }
    write(c, ptr, &1u64.to_le_bytes())
}

fn random_get(c: &mut Ctx<'_>, ptr: i32, len: i32) -> Errno {
    let mut bytes = vec![0u8; len as u32 as usize];
    rand::rng().fill_bytes(&mut bytes);
    write(c, ptr, &bytes)
}

/// See the module docs: each subscription (48 bytes: userdata u64, tag
/// u8 at 8) gets an event (32 bytes: userdata u64, error u16 at 8, type
/// u8 at 10).
fn poll_oneoff(c: &mut Ctx<'_>, subs: i32, events: i32, count: i32, written_ptr: i32) -> Errno {
    if !(1..=MAX_IOVS).contains(&count) {
        return Err(errno::INVAL);
    }
    let memory = memory(c)?;
    for i in 0..count {
        let sub = memory
            .data(&*c)
            .get(slice(subs.wrapping_add(i * 48), 48)?)
            .ok_or(errno::FAULT)?;
        let tag = sub[8];
        let mut event = [0u8; 32];
        event[..8].copy_from_slice(&sub[..8]);
        event[10] = tag;
        if tag != 0 {
            event[8..10].copy_from_slice(&(errno::NOSYS as u16).to_le_bytes());
        }
        write(c, events.wrapping_add(i * 32), &event)?;
    }
    write(c, written_ptr, &count.to_le_bytes())
}

/// Two zeros: no arguments (or no environment) and no bytes of them.
fn sizes(c: &mut Ctx<'_>, count_ptr: i32, size_ptr: i32) -> Errno {
    write(c, count_ptr, &0u32.to_le_bytes())?;
    write(c, size_ptr, &0u32.to_le_bytes())
}

/// The functions of the module docs' table, under both module names.
pub(crate) fn define(l: &mut Linker<HostState>) -> Result<(), wasmi::Error> {
    for m in MODULES {
        l.func_wrap(m, "proc_exit", |code: i32| -> Result<(), wasmi::Error> {
            Err(wasmi::Error::i32_exit(code))
        })?;
        l.func_wrap(
            m,
            "fd_write",
            |mut c: Ctx<'_>, fd: i32, iovs: i32, n: i32, out: i32| {
                answer(fd_write(&mut c, fd, iovs, n, out))
            },
        )?;
        l.func_wrap(m, "fd_fdstat_get", |mut c: Ctx<'_>, fd: i32, p: i32| {
            answer(fd_fdstat_get(&mut c, fd, p))
        })?;
        l.func_wrap(m, "fd_prestat_get", |_: i32, _: i32| errno::BADF)?;
        l.func_wrap(m, "fd_prestat_dir_name", |_: i32, _: i32, _: i32| {
            errno::BADF
        })?;
        l.func_wrap(
            m,
            "clock_time_get",
            |mut c: Ctx<'_>, id: i32, _precision: i64, p: i32| {
                answer(clock_time_get(&mut c, id, p))
            },
        )?;
        l.func_wrap(m, "clock_res_get", |mut c: Ctx<'_>, id: i32, p: i32| {
            answer(clock_res_get(&mut c, id, p))
        })?;
        l.func_wrap(m, "random_get", |mut c: Ctx<'_>, p: i32, n: i32| {
            answer(random_get(&mut c, p, n))
        })?;
        for name in ["args_sizes_get", "environ_sizes_get"] {
            l.func_wrap(m, name, |mut c: Ctx<'_>, n: i32, s: i32| {
                answer(sizes(&mut c, n, s))
            })?;
        }
        for name in ["args_get", "environ_get"] {
            l.func_wrap(m, name, |_: i32, _: i32| errno::SUCCESS)?;
        }
        l.func_wrap(m, "sched_yield", || errno::SUCCESS)?;
        l.func_wrap(
            m,
            "poll_oneoff",
            |mut c: Ctx<'_>, subs: i32, events: i32, n: i32, out: i32| {
                answer(poll_oneoff(&mut c, subs, events, n, out))
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_logged_by_line() {
        let mut pending = b"panic: ".to_vec();
        assert!(complete_lines(&mut pending).is_empty());
        pending.extend_from_slice(b"asked to trap\n\ngoroutine 1");
        assert_eq!(
            complete_lines(&mut pending),
            [b"panic: asked to trap".to_vec(), Vec::new()]
        );
        assert_eq!(pending, b"goroutine 1");
        let mut long = vec![b'x'; MAX_LINE + 10];
        long.push(b'\n');
        let lines = complete_lines(&mut long);
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, 10]
        );
        assert!(long.is_empty());
    }
}
