//! Two network namespaces joined by a veth pair, for interception tests:
//! a "pod" (where baton and its clients run, and where the tests install
//! nftables rules) and a "remote" host (where the real servers run).
//!
//! | namespace | veth address (IPv4, IPv6) |
//! |---|---|
//! | pod | [`POD_V4`], [`POD_V6`] |
//! | remote | [`REMOTE_V4`], [`REMOTE_V6`] |
//!
//! The addresses are fixed: each namespace has its own network stack, so
//! they can never clash with the machine's or another test's. The names
//! are unique per process and instance (`bt<pid>p<n>`, `bt<pid>r<n>`);
//! dropping [`Namespaces`] deletes both (processes started in them should
//! be dropped first).
//!
//! Threads of the test process join a namespace with `setns(2)`
//! ([`Namespaces::in_pod`], [`Namespaces::in_remote`]): a socket belongs
//! to the namespace of the thread that made it, for its whole life, so a
//! listener bound or a connection made there can be handed to tokio on
//! any thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The pod's end of the veth pair.
pub const POD_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
pub const POD_V6: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 1);
/// The remote host's end.
pub const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
pub const REMOTE_V6: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 2);

/// The uid an intercepted application runs as: interception rules leave
/// root's sockets (baton's) alone and catch this user's.
pub const APP_UID: u32 = 65534;

/// The remote host's addresses, IPv4 then IPv6.
pub fn remote_ips() -> [IpAddr; 2] {
    [IpAddr::V4(REMOTE_V4), IpAddr::V6(REMOTE_V6)]
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A pod and a remote host; see the module docs.
#[derive(Debug)]
pub struct Namespaces {
    pub pod: String,
    pub remote: String,
}

/// Runs `ip args`, panicking with its output on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Namespaces {
    pub fn new() -> Namespaces {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id();
        let ns = Namespaces {
            pod: format!("bt{id}p{n}"),
            remote: format!("bt{id}r{n}"),
        };
        let (pod, remote) = (ns.pod.as_str(), ns.remote.as_str());
        ip(&["netns", "add", pod]);
        ip(&["netns", "add", remote]);
        for name in [pod, remote] {
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", pod, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns",
            remote,
        ]);
        for (name, v4, v6) in [(pod, POD_V4, POD_V6), (remote, REMOTE_V4, REMOTE_V6)] {
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                "veth0",
            ]);
            // nodad: usable at once, without duplicate address detection.
            ip(&[
                "-n",
                name,
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "veth0",
                "nodad",
            ]);
            ip(&["-n", name, "link", "set", "veth0", "up"]);
        }
        ns
    }

    /// A command prefix that runs a program in the pod (for
    /// [`crate::Baton::start_wrapped`]).
    pub fn pod_wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.pod]
    }

    /// The same for the remote host.
    pub fn remote_wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.remote]
    }

    /// `program args` in the pod as the intercepted application
    /// ([`APP_UID`]).
    pub fn as_app(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.pod, "setpriv"])
            .arg(format!("--reuid={APP_UID}"))
            .arg(format!("--regid={APP_UID}"))
            .args(["--clear-groups", program])
            .args(args);
        command
    }

    /// Loads nftables `ruleset` in the pod.
    pub fn nft(&self, ruleset: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.pod, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft runs (.ci/run installs nftables)");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), ruleset.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft -f: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `baton intercept install|remove` for the pod, with `args` after
    /// it, which must succeed.
    pub fn intercept(&self, action: &str, args: &[String]) {
        let out = Command::new(crate::bin("baton"))
            .args(["intercept", action, "--netns", &self.pod])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "baton intercept {action} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pod's rules, as `nft list ruleset` prints them.
    pub fn ruleset(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.pod, "nft", "list", "ruleset"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ip args` in the pod (`rule add …`, `route add …`).
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.pod.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// TPROXY's routing in the pod: packets with mark 1 are delivered
    /// locally, whatever their destination (`ip rule add fwmark 1 lookup
    /// 100`, a `local` default route in table 100), IPv4 and IPv6.
    pub fn deliver_marked_locally(&self) {
        for (family, all) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
            self.ip(&[family, "rule", "add", "fwmark", "1", "lookup", "100"]);
            self.ip(&[
                family, "route", "add", "local", all, "dev", "lo", "table", "100",
            ]);
        }
    }

    /// Runs `f` on a thread in the pod's network namespace, as the
    /// intercepted application ([`APP_UID`]: the thread's own
    /// credentials, which Linux keeps per thread).
    pub fn in_pod_as_app<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_namespace(&self.pod, move || {
            let app = Some(rustix::process::Uid::from_raw(APP_UID));
            rustix::thread::set_thread_res_uid(app, app, app).expect("setresuid (as root)");
            f()
        })
    }

    /// Runs `f` on a thread in the remote host's network namespace.
    pub fn in_remote<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_namespace(&self.remote, f)
    }
}

impl Default for Namespaces {
    fn default() -> Namespaces {
        Namespaces::new()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.pod, &self.remote] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs `f` on a new thread that joined network namespace `name` first.
fn in_namespace<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
    .join()
    .expect("the namespace thread panicked")
}
