//! baton installed like a proxy: the Debian package (`cargo deb`, see
//! `supervisor/Cargo.toml` and `debian/`) installed with `dpkg -i` into a
//! real systemd booted in namespaces ([`baton_tests::systemd`]), served,
//! reloaded, upgraded in place and purged, the way an operator does it.
//!
//! The package under test is `$BATON_DEB`, else the newest `baton_*.deb`
//! in the workspace's `target/debian/`, where `.ci/run` builds it before
//! `cargo test`:
//!
//! ```sh
//! cargo build --release --locked -p baton-supervisor -p baton-worker
//! cargo deb -p baton-supervisor --no-build --locked --strip
//! ```
//!
//! Without one the test fails and says so: it never skips. The container's
//! root is an overlay of the host's, so `dpkg` inside it changes nothing on
//! the host.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Output;

use baton_tests::PATIENCE;
use baton_tests::systemd::{BATON_BIN, Container, describe, echo_addr, echo_round};

/// Where the package is copied inside the container.
const DEB: &str = "/root/baton.deb";

/// The packaged config's HTTP listener (`configs/package.toml`).
const HELLO: &str = "http://127.0.0.1:8080/";

/// The packaged config's admin endpoint.
const ADMIN_READY: &str = "http://127.0.0.1:9901/ready";

/// A listener the test adds on a privileged port: the service runs as the
/// user `baton`, and binds it with the one capability its unit grants.
const LOW_PORT_LISTENER: &str = "\n[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:80\"\n\
    protocol = \"http\"\n\n[[listeners.routes]]\n\
    direct = { status = 200, body = \"port 80, generation {generation}\\n\" }\n";

/// Long-lived connections kept open across the reloads.
const KEPT: usize = 3;

/// Everything the package installs, and so everything a purge removes.
const PACKAGED_PATHS: [&str; 7] = [
    BATON_BIN,
    "/usr/bin/baton-worker",
    "/lib/systemd/system/baton.service",
    "/lib/systemd/system/baton.socket",
    "/usr/lib/sysusers.d/baton.conf",
    "/etc/baton/baton.toml",
    "/usr/share/doc/baton/README.md",
];

/// The .deb to install: `$BATON_DEB`, else the newest `baton_*.deb` that
/// `cargo deb` wrote into this workspace's target directory.
fn package() -> PathBuf {
    if let Some(path) = std::env::var_os("BATON_DEB") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "BATON_DEB={} is not a file", path.display());
        return path;
    }
    // target/debug/deps/<this test> -> target/debian
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    let dir = target.join("debian");
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("baton_") && name.ends_with(".deb")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    match newest {
        Some(entry) => entry.path(),
        None => panic!(
            "no baton_*.deb in {}: build the package first, as .ci/run does:\n  \
             cargo build --release --locked -p baton-supervisor -p baton-worker\n  \
             cargo deb -p baton-supervisor --no-build --locked --strip\n\
             (or point BATON_DEB at one)",
            dir.display()
        ),
    }
}

/// `dpkg args` inside the container, in the clean environment apt gives
/// maintainer scripts (not the test's: no cargo variables, a PATH with
/// the sbin directories dpkg insists on).
fn dpkg(container: &Container, args: &[&str]) -> Output {
    let mut argv = vec![
        "-i",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND=noninteractive",
        "dpkg",
    ];
    argv.extend_from_slice(args);
    container.run("env", &argv)
}

fn dpkg_ok(container: &Container, args: &[&str]) -> String {
    let out = dpkg(container, args);
    assert!(
        out.status.success(),
        "dpkg {}: {}\njournal:\n{}",
        args.join(" "),
        describe(&out),
        container.journal("baton.service")
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("dpkg {}:\n{said}", args.join(" "));
    said
}

/// `curl url` inside the container: the body, or the failure.
fn curl(container: &Container, url: &str) -> Result<String, String> {
    let max = PATIENCE.as_secs().to_string();
    let out = container.run("curl", &["-sS", "--fail", "--max-time", &max, url]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(describe(&out))
    }
}

fn curl_ok(container: &Container, url: &str) -> String {
    curl(container, url).unwrap_or_else(|e| panic!("curl {url}: {e}"))
}

/// The serving generation's (number, worker pid), from `baton status --json`.
fn serving(container: &Container) -> (u64, u64) {
    let status = container.baton_status();
    let generations = status["generations"].as_array().unwrap();
    assert_eq!(generations.len(), 1, "one generation alive: {status}");
    (
        generations[0]["generation"].as_u64().unwrap(),
        generations[0]["pid"].as_u64().unwrap(),
    )
}

/// The user name process `pid` (in the container) runs as.
fn user_of(container: &Container, pid: u64) -> String {
    container
        .sh_ok(&format!("stat -c %U /proc/{pid}"))
        .trim()
        .to_string()
}

fn all_echo(streams: &mut [TcpStream], label: &str) {
    for (i, stream) in streams.iter_mut().enumerate() {
        echo_round(stream, format!("{label} on connection {i}\n").as_bytes())
            .unwrap_or_else(|e| panic!("connection {i} after {label}: {e}"));
    }
}

/// A `systemctl reload baton` (or the package's upgrade) has made
/// `generation` the serving one: same supervisor, a new worker, every kept
/// connection moved to it and still echoing.
fn check_live_upgrade(
    container: &Container,
    main_pid: u32,
    generation: u64,
    kept: &mut [TcpStream],
    label: &str,
) {
    assert_eq!(container.is_active("baton"), "active", "after {label}");
    assert_eq!(
        container.main_pid("baton"),
        main_pid,
        "MainPID after {label}"
    );
    let (serving_generation, worker) = serving(container);
    assert_eq!(serving_generation, generation, "generation after {label}");
    assert_eq!(user_of(container, worker), "baton", "the worker's user");
    let report = &container.baton_status()["last_upgrade"];
    assert_eq!(report["outcome"], "succeeded", "{label}: {report}");
    assert_eq!(report["migrated"], kept.len() as u64, "{label}: {report}");
    all_echo(kept, label);
}

/// Whether something accepts TCP connections at `addr` in the container.
fn accepts(container: &Container, addr: SocketAddr) -> bool {
    match container.in_net(|| TcpStream::connect(addr)) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => false,
        Err(e) => panic!("connect {addr}: {e}"),
    }
}

/// `dpkg -i` on a fresh machine: the user is made, the service enabled
/// and started as it, serving the packaged config (echo, HTTP, admin).
/// `systemctl reload baton` is a live upgrade; a listener on port 80 binds
/// although the service is not root; installing the package again (an
/// upgrade) reloads instead of restarting and keeps the edited conffile;
/// `dpkg --purge` stops the service and leaves nothing behind.
#[test]
fn the_package_installs_serves_reloads_upgrades_and_purges() {
    let deb = package();
    eprintln!("installing {}", deb.display());
    let container = Container::boot_without_baton(|stage| stage.copy(&deb, DEB));

    // Docker-style base images ship a policy-rc.d that forbids maintainer
    // scripts to start services; the container stands for a fresh Debian
    // machine, where installing a service starts it. (The overlay keeps
    // the host's file.)
    container.sh_ok("rm -f /usr/sbin/policy-rc.d");
    let before = container.sh(&format!(
        "getent passwd baton || getent group baton || ls -d {} /etc/baton 2>/dev/null",
        PACKAGED_PATHS.join(" ")
    ));
    assert!(
        !before.status.success() && before.stdout.is_empty(),
        "baton is already on this machine (the container's root is the host's): {}",
        describe(&before)
    );

    // Install: Debian-style, enabled and started by the postinst.
    let installed = dpkg_ok(&container, &["-i", DEB]);
    assert_eq!(
        container.show("baton", "UnitFileState"),
        "enabled",
        "dpkg -i: {installed}"
    );
    assert_eq!(
        container.is_active("baton"),
        "active",
        "dpkg -i: {installed}"
    );
    assert_eq!(
        container.show("baton", "FragmentPath"),
        "/lib/systemd/system/baton.service"
    );
    // The socket unit ships for operators who want it, not enabled.
    assert_eq!(container.show("baton.socket", "UnitFileState"), "disabled");
    assert_eq!(container.is_active("baton.socket"), "inactive");

    // Not root: the supervisor and its worker run as the package's system user.
    let passwd = container.sh_ok("getent passwd baton");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields.len(), 7, "{passwd}");
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system uid: {passwd}"
    );
    assert!(fields[6].ends_with("nologin"), "no login shell: {passwd}");
    let main_pid = container.main_pid("baton");
    assert_eq!(user_of(&container, u64::from(main_pid)), "baton");
    let (generation, worker) = serving(&container);
    assert_eq!(generation, 1);
    assert_eq!(user_of(&container, worker), "baton");
    // The control socket is in the unit's RuntimeDirectory, the user's.
    let socket = container.sh_ok("stat -c '%U %a' /run/baton /run/baton/control.sock");
    assert_eq!(socket, "baton 700\nbaton 600\n");

    // It serves the packaged config out of the box.
    let mut kept: Vec<TcpStream> = (0..KEPT)
        .map(|i| {
            let mut stream = container.connect(echo_addr()).unwrap();
            echo_round(&mut stream, format!("installed {i}\n").as_bytes()).unwrap();
            stream
        })
        .collect();
    let hello = curl_ok(&container, HELLO);
    assert!(
        hello.starts_with("hello from baton: generation 1, worker pid"),
        "{hello:?}"
    );
    curl_ok(&container, ADMIN_READY);
    // `baton status` (for people) finds the supervisor through the config.
    let status = container.run(BATON_BIN, &["status", "-c", "/etc/baton/baton.toml"]);
    assert!(
        status.status.success(),
        "baton status: {}",
        describe(&status)
    );
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("echo"),
        "baton status: {}",
        describe(&status)
    );

    // `systemctl reload` (ExecReload= runs `baton upgrade` as the user
    // `baton`, which the control socket lets in): a live upgrade.
    container.systemctl_ok(&["reload", "baton"]);
    check_live_upgrade(&container, main_pid, 2, &mut kept, "systemctl reload");
    assert!(curl_ok(&container, HELLO).starts_with("hello from baton: generation 2"));

    // A listener on a privileged port, added to the conffile and reloaded:
    // the supervisor binds it as `baton` with CAP_NET_BIND_SERVICE.
    container.sh_ok(&format!(
        "printf '%s' '{LOW_PORT_LISTENER}' >> /etc/baton/baton.toml && \
         {BATON_BIN} check -c /etc/baton/baton.toml"
    ));
    container.systemctl_ok(&["reload", "baton"]);
    check_live_upgrade(
        &container,
        main_pid,
        3,
        &mut kept,
        "the reload adding port 80",
    );
    assert_eq!(
        curl_ok(&container, "http://127.0.0.1:80/"),
        "port 80, generation 3\n"
    );

    // Installing the package again is an upgrade: the postinst reloads the
    // running service (the new worker binary takes every connection)
    // instead of restarting it, and the admin's conffile stays.
    dpkg_ok(&container, &["-i", DEB]);
    check_live_upgrade(&container, main_pid, 4, &mut kept, "the package upgrade");
    assert_eq!(
        curl_ok(&container, "http://127.0.0.1:80/"),
        "port 80, generation 4\n"
    );

    // Purge: the service stops (after its connections close: the drain
    // would otherwise take the conffile's drain_timeout), everything the
    // package installed or made goes.
    drop(kept);
    dpkg_ok(&container, &["--purge", "baton"]);
    assert_eq!(container.show("baton", "LoadState"), "not-found");
    assert_eq!(container.is_active("baton"), "inactive");
    let left = container.sh_ok("for exe in /proc/[0-9]*/exe; do readlink $exe; done; true");
    assert!(
        !left.contains(BATON_BIN),
        "a baton process survived the purge:\n{left}"
    );
    assert!(
        !accepts(&container, echo_addr()),
        "the echo listener is closed"
    );
    assert!(
        curl(&container, HELLO).is_err(),
        "the HTTP listener is closed"
    );
    for path in PACKAGED_PATHS.iter().chain(&[
        "/etc/baton",
        "/run/baton",
        "/etc/systemd/system/multi-user.target.wants/baton.service",
        "/var/lib/systemd/deb-systemd-helper-enabled/baton.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-masked/baton.service",
    ]) {
        assert!(
            !container
                .sh(&format!("test -e {path} || test -L {path}"))
                .status
                .success(),
            "{path} is left after the purge"
        );
    }
    for database in ["passwd", "group"] {
        let out = container.run("getent", &[database, "baton"]);
        assert!(
            !out.status.success(),
            "baton is left in {database}: {}",
            describe(&out)
        );
    }
    let query = dpkg(&container, &["-s", "baton"]);
    assert!(
        !query.status.success(),
        "dpkg still knows baton: {}",
        describe(&query)
    );
}
