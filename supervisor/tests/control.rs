//! The control socket over real unix sockets: the server in this process
//! with a fake main loop, the client either [`call`] or the real `baton`
//! binary.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use baton_supervisor::control::proto::{
    ClusterStatus, EndpointHealth, EndpointStatus, GenerationStatus, ListenerStatus, Outcome,
    ReleaseStatus, Reply, Request, Status, UpgradeCounts, UpgradeReport,
};
use baton_supervisor::control::{
    self, ClientError, Command, ControlError, MAX_FRAME, REQUEST_TIMEOUT, bind, call, serve,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

// === fixtures ===

/// A server on `<tempdir>/control.sock` and a fake main loop that answers
/// with `answer` and reports every request it was given on `seen`.
struct Fixture {
    dir: TempDir,
    path: PathBuf,
    seen: mpsc::UnboundedReceiver<Request>,
    /// Per request: the (device, inode) of the binary file passed with it.
    files: mpsc::UnboundedReceiver<Option<(u64, u64)>>,
}

fn start(answer: fn(&Request) -> Reply) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let listener = bind(&path).unwrap();
    let (commands, mut receiver) = mpsc::channel::<Command>(8);
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let (files_tx, files) = mpsc::unbounded_channel();
    tokio::spawn(serve(listener, commands));
    tokio::spawn(async move {
        while let Some(command) = receiver.recv().await {
            let _ = seen_tx.send(command.request.clone());
            let _ = files_tx.send(
                command
                    .binary
                    .map(|file| identity(&file.metadata().unwrap())),
            );
            let _ = command.reply.send(answer(&command.request));
        }
    });
    Fixture {
        dir,
        path,
        seen,
        files,
    }
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

fn report(kind: &str, outcome: Outcome, reason: Option<&str>) -> UpgradeReport {
    UpgradeReport {
        outcome,
        reason: reason.map(str::to_string),
        kind: kind.to_string(),
        from_generation: Some(1),
        to_generation: Some(2),
        migrated: 12,
        lost: 0,
        requests_lost: 0,
        duration_ms: 840,
    }
}

fn sample_status() -> Status {
    Status {
        supervisor_pid: 4242,
        config: "/etc/baton/baton.toml".to_string(),
        generations: vec![GenerationStatus {
            generation: 2,
            pid: 5151,
            binary: "/usr/bin/baton-worker".to_string(),
            phase: "serving".to_string(),
            connections: Some(12),
        }],
        listeners: vec![ListenerStatus {
            name: "orders".to_string(),
            address: "0.0.0.0:7000".to_string(),
        }],
        clusters: vec![ClusterStatus {
            name: "back".to_string(),
            lb: "least_request".to_string(),
            endpoints: vec![EndpointStatus {
                address: "10.0.0.5:9000".to_string(),
                weight: 3,
                health: EndpointHealth::Unhealthy,
                ejected: Some(false),
                in_flight: Some(2),
            }],
        }],
        admin: Some("127.0.0.1:9901".to_string()),
        admin_control: None,
        upgrade_phase: "idle".to_string(),
        last_upgrade: Some(report("upgrade", Outcome::Succeeded, None)),
        upgrades: UpgradeCounts {
            requested: 3,
            succeeded: 1,
            rolled_back: 0,
            failed: 1,
            refused: 1,
        },
        worker_restarts: 2,
        rollback_target: Some(ReleaseStatus {
            binary: "/opt/old/baton-worker".to_string(),
            config: "/etc/baton/old.toml".to_string(),
        }),
        xds: Some(baton_supervisor::control::proto::XdsStatus {
            servers: vec!["127.0.0.1:18000".to_string()],
            server: Some("127.0.0.1:18000".to_string()),
            connected: true,
            mode: "sotw".to_string(),
            streams: 1,
            versions: [("CDS".to_string(), "3".to_string())].into(),
            resources: [("CDS".to_string(), 2)].into(),
            accepted: 4,
            rejected: 1,
            last_rejection: Some(
                "CDS: CDS \"a\": lb_policy CLUSTER_PROVIDED is not supported".into(),
            ),
            last_error: None,
        }),
    }
}

/// Every operation succeeds.
fn happy(request: &Request) -> Reply {
    match request {
        Request::Upgrade { .. } => Reply::Upgrade(report("upgrade", Outcome::Succeeded, None)),
        Request::Rollback => Reply::Upgrade(report("rollback", Outcome::Succeeded, None)),
        Request::Status => Reply::Status(sample_status()),
        Request::Stop => Reply::Stopped,
    }
}

/// Every operation fails, each its own way.
fn unhappy(request: &Request) -> Reply {
    match request {
        Request::Upgrade { .. } => Reply::Upgrade(report(
            "upgrade",
            Outcome::RolledBack,
            Some("worker 2 exited with status 3"),
        )),
        Request::Rollback => Reply::Upgrade(UpgradeReport {
            to_generation: None,
            ..report("rollback", Outcome::Refused, Some("no previous generation"))
        }),
        Request::Status | Request::Stop => Reply::Error {
            reason: "an upgrade is in progress".to_string(),
        },
    }
}

fn baton() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    // The tests say where the socket is; an inherited one must not win.
    command.env_remove(control::SOCKET_ENV);
    command
}

async fn run(command: &mut tokio::process::Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().await.unwrap();
    (
        status.code(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// Sends raw bytes as a client would, then reads what comes back, to EOF.
async fn exchange(path: &Path, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if close_write {
        stream.shutdown().await.unwrap();
    }
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    reply
}

/// Parses exactly one reply frame, nothing after it.
fn one_reply(bytes: &[u8]) -> Reply {
    let (header, body) = bytes.split_at(4);
    let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
    assert_eq!(body.len(), len, "one frame, nothing after it");
    serde_json::from_slice(body).unwrap()
}

fn error_reason(reply: Reply) -> String {
    match reply {
        Reply::Error { reason } => reason,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// What a supervisor that died leaves behind: a socket file with nobody
/// behind it (connect: ECONNREFUSED). Made with mknod rather than by
/// binding and closing a listener, because other tests fork children
/// meanwhile, and a child between fork and exec would hold a copy of that
/// listener open, keeping it alive.
fn stale_socket(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Socket,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let refused = std::os::unix::net::UnixStream::connect(path).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

// === request/reply ===

#[tokio::test]
async fn every_request_kind_round_trips() {
    let mut fx = start(happy);
    let requests = [
        Request::Upgrade {
            binary: Some("/opt/new/baton-worker".into()),
            config: Some("/etc/baton/new.toml".into()),
            binary_attached: false,
        },
        Request::Upgrade {
            binary: None,
            config: None,
            binary_attached: false,
        },
        Request::Rollback,
        Request::Status,
        Request::Stop,
    ];
    for request in requests {
        let reply = call(&fx.path, &request).await.unwrap();
        assert_eq!(reply, happy(&request));
        assert_eq!(fx.seen.recv().await.unwrap(), request);
    }
}

#[tokio::test]
async fn a_main_loop_that_is_gone_means_shutting_down() {
    // The main loop drops the reply sender without answering...
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (commands, mut receiver) = mpsc::channel::<Command>(1);
    let server = tokio::spawn(serve(bind(&path).unwrap(), commands));
    let main_loop = tokio::spawn(async move {
        let command = receiver.recv().await.unwrap();
        drop(command.reply);
        // ...then goes away altogether.
        drop(receiver);
    });
    let reply = call(&path, &Request::Stop).await.unwrap();
    assert_eq!(
        error_reason(reply),
        "the supervisor is shutting down".to_string()
    );
    main_loop.await.unwrap();
    // With the receiver gone, serve() returns.
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("serve() returns once the main loop is gone")
        .unwrap();
}

#[tokio::test]
async fn a_reply_given_at_exit_is_written_before_serve_returns() {
    // `baton stop`: the main loop answers, then is gone at once.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (commands, mut receiver) = mpsc::channel::<Command>(1);
    let server = tokio::spawn(serve(bind(&path).unwrap(), commands));
    let client = tokio::spawn({
        let path = path.clone();
        async move { call(&path, &Request::Stop).await }
    });
    let command = receiver.recv().await.unwrap();
    command.reply.send(Reply::Stopped).unwrap();
    drop(receiver);
    server.await.unwrap();
    // The process could exit here: the reply is already on its way.
    assert_eq!(client.await.unwrap().unwrap(), Reply::Stopped);
    // And nobody accepts any more.
    let err = call(&path, &Request::Status).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_silent_client_delays_shutdown_by_the_grace_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (commands, mut receiver) = mpsc::channel::<Command>(1);
    let server = tokio::spawn(serve(bind(&path).unwrap(), commands));
    // The main loop answers one request and is gone.
    tokio::spawn(async move {
        let command = receiver.recv().await.unwrap();
        let _ = command.reply.send(Reply::Stopped);
    });
    let mut silent = UnixStream::connect(&path).await.unwrap();
    // Accepted in backlog order: once this one is answered, the silent
    // one has been accepted too, and is open when the main loop goes.
    assert_eq!(call(&path, &Request::Stop).await.unwrap(), Reply::Stopped);
    // Real time (a paused clock would jump past the silent client's own
    // timeout while sockets are polled), about SHUTDOWN_GRACE.
    let started = std::time::Instant::now();
    server.await.unwrap();
    assert!(
        started.elapsed() < REQUEST_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "dropped without a reply");
}

// === bind: modes, stale and live sockets ===

#[tokio::test]
async fn socket_is_0600_and_created_dirs_are_0700() {
    let dir = tempfile::tempdir().unwrap();
    // An existing directory keeps its mode, whatever it is.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("run/baton/control.sock");
    let _listener = bind(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("run/baton")), 0o700);
    assert_eq!(mode(&dir.path().join("run")), 0o700);
    assert_eq!(mode(dir.path()), 0o755);
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    stale_socket(&path);
    let listener = bind(&path).unwrap();
    let (commands, mut receiver) = mpsc::channel::<Command>(1);
    tokio::spawn(serve(listener, commands));
    tokio::spawn(async move {
        while let Some(command) = receiver.recv().await {
            let _ = command.reply.send(Reply::Stopped);
        }
    });
    assert_eq!(call(&path, &Request::Stop).await.unwrap(), Reply::Stopped);
}

#[tokio::test]
async fn a_live_socket_is_refused_and_keeps_serving() {
    let fx = start(happy);
    let err = bind(&fx.path).unwrap_err();
    assert!(matches!(err, ControlError::InUse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("another supervisor is listening on")
            && message.contains(&*fx.path.to_string_lossy()),
        "{message}"
    );
    // The probe did not disturb the live one.
    assert_eq!(
        call(&fx.path, &Request::Status).await.unwrap(),
        happy(&Request::Status)
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = bind(&path).unwrap_err();
    assert!(matches!(err, ControlError::NotASocket { .. }), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

// === malformed and silent clients ===

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_server_keeps_serving() {
    let mut fx = start(happy);

    let garbage = b"not json!!";
    let mut frame = (garbage.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(garbage);
    let reason = error_reason(one_reply(&exchange(&fx.path, &frame, false).await));
    assert!(
        reason.starts_with("malformed request: malformed JSON"),
        "{reason}"
    );

    // An HTTP request sent here by mistake: its first 4 bytes, as a length,
    // are far over the bound, and nothing that size is allocated.
    let reason = error_reason(one_reply(
        &exchange(&fx.path, b"GET / HTTP/1.1\r\n\r\n", false).await,
    ));
    assert!(
        reason.contains("exceeds the 1048576-byte bound"),
        "{reason}"
    );

    let over = ((MAX_FRAME + 1) as u32).to_be_bytes();
    let reason = error_reason(one_reply(&exchange(&fx.path, &over, false).await));
    assert!(
        reason.contains(&format!("a frame of {} bytes exceeds", MAX_FRAME + 1)),
        "{reason}"
    );

    // Truncated: the header promises 100 bytes, fewer come, then EOF.
    let partial = br#"{"request":"sta"#;
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(partial);
    let reason = error_reason(one_reply(&exchange(&fx.path, &truncated, true).await));
    let expected = format!("after {} of 104 bytes", 4 + partial.len());
    assert!(reason.contains(&expected), "{reason}");

    // Well-formed JSON, but a request this supervisor does not know (a
    // newer CLI): named in the reason.
    let unknown = br#"{"request":"reboot"}"#;
    let mut frame = (unknown.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(unknown);
    let reason = error_reason(one_reply(&exchange(&fx.path, &frame, false).await));
    assert!(reason.contains("unknown variant `reboot`"), "{reason}");

    // None of that reached the main loop, and the next client is served.
    assert_eq!(fx.seen.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        call(&fx.path, &Request::Status).await.unwrap(),
        happy(&Request::Status)
    );
    assert_eq!(fx.seen.recv().await.unwrap(), Request::Status);
}

#[tokio::test]
async fn a_peer_that_closes_at_once_gets_nothing() {
    // What bind()'s liveness probe does to a live supervisor.
    let mut fx = start(happy);
    let reply = exchange(&fx.path, b"", true).await;
    assert!(reply.is_empty());
    assert_eq!(fx.seen.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_dropped_after_the_request_timeout() {
    let mut fx = start(happy);
    let started = tokio::time::Instant::now();
    let mut silent = UnixStream::connect(&fx.path).await.unwrap();
    let mut reply = Vec::new();
    // The clock is paused: it jumps to the server's deadline as soon as
    // every task waits, so this takes no real time.
    silent.read_to_end(&mut reply).await.unwrap();
    assert!(started.elapsed() >= REQUEST_TIMEOUT);
    let reason = error_reason(one_reply(&reply));
    assert_eq!(reason, format!("no request within {REQUEST_TIMEOUT:?}"));
    assert_eq!(fx.seen.try_recv(), Err(TryRecvError::Empty));

    // Real sockets and auto-advance do not mix once a client waits on a
    // timer of its own (the clock would jump over the exchange): real time
    // from here on.
    tokio::time::resume();
    assert_eq!(
        call(&fx.path, &Request::Status).await.unwrap(),
        happy(&Request::Status)
    );
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_others() {
    let fx = start(happy);
    let _silent = UnixStream::connect(&fx.path).await.unwrap();
    let _half = {
        let mut half = UnixStream::connect(&fx.path).await.unwrap();
        half.write_all(&50u32.to_be_bytes()).await.unwrap();
        half
    };
    for request in [Request::Status, Request::Stop] {
        assert_eq!(call(&fx.path, &request).await.unwrap(), happy(&request));
    }
}

// === peers of another uid ===

/// Collects what a tracing subscriber writes, without a lock: each write
/// is a message on a channel.
#[derive(Clone)]
struct LogSink(mpsc::UnboundedSender<String>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `path` can be run by a user who is neither its owner nor in
/// its group: o+x on every directory above it, o+rx on the file.
fn runnable_by_others(path: &Path) -> bool {
    let dirs_ok = path
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .all(|d| mode(d) & 0o001 != 0);
    dirs_ok && mode(path) & 0o005 == 0o005
}

/// A client running as another uid reaches the socket through the file
/// system (the test opens the modes up for it) and is refused by the
/// SO_PEERCRED check alone. Needs root, to run the CLI as nobody.
#[tokio::test]
async fn a_peer_of_another_uid_is_refused_and_logged() {
    // Not a skip: the suite runs as root (as CI does), and a run without
    // it must not pass without having checked this.
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root to run a client as uid 65534 (run the suite as root, as .ci/run does)"
    );
    let (log_tx, mut log_rx) = mpsc::unbounded_channel();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || LogSink(log_tx.clone()))
        .with_ansi(false)
        .finish();
    // This test's runtime is current-thread: the server's tasks log here.
    let _log = tracing::subscriber::set_default(subscriber);

    let mut fx = start(happy);
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&fx.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut cli = PathBuf::from(env!("CARGO_BIN_EXE_baton"));
    if !runnable_by_others(&cli) {
        let copy = fx.dir.path().join("baton");
        std::fs::copy(&cli, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        cli = copy;
    }

    let mut command = tokio::process::Command::new("setpriv");
    command
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&cli)
        .arg("status")
        .arg("--control-socket")
        .arg(&fx.path)
        .current_dir(fx.dir.path())
        .env_remove(control::SOCKET_ENV);
    let (code, stdout, stderr) = run(&mut command).await;
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("permission denied: uid 65534 may not control this supervisor"),
        "{stderr}"
    );
    assert_eq!(fx.seen.try_recv(), Err(TryRecvError::Empty));

    let mut log = String::new();
    while let Ok(line) = log_rx.try_recv() {
        log.push_str(&line);
    }
    assert!(
        log.contains("refused a peer of another uid") && log.contains("uid=65534"),
        "{log}"
    );
    assert!(log.contains("pid="), "{log}");

    // Root (this process) is still let in.
    assert_eq!(
        call(&fx.path, &Request::Status).await.unwrap(),
        happy(&Request::Status)
    );
}

// === the CLI ===

#[tokio::test]
async fn status_prints_a_table_or_json() {
    let fx = start(happy);
    let (code, stdout, stderr) =
        run(baton().arg("status").arg("--control-socket").arg(&fx.path)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("supervisor    pid 4242, config /etc/baton/baton.toml\n"));
    assert!(
        stdout.contains("\n2           5151  serving  12           /usr/bin/baton-worker\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\nxds           connected to 127.0.0.1:18000 (sotw, 1 streams), versions CDS 3; \
             4 accepted, 1 rejected (last: CDS: CDS \"a\": lb_policy CLUSTER_PROVIDED is not supported)\n"
        ),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(baton()
        .args(["status", "--json", "--control-socket"])
        .arg(&fx.path))
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let status: Status = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status, sample_status());
}

/// A status from a supervisor older than its `admin`, `upgrades`,
/// `worker_restarts` and `clusters` fields still parses, with nothing and zeros there.
#[test]
fn an_older_supervisors_status_parses() {
    let old = r#"{"supervisor_pid":7,"config":"<embedded default>","generations":[],
        "listeners":[],"upgrade_phase":"idle","last_upgrade":null,"rollback_target":null}"#;
    let status: Status = serde_json::from_str(old).unwrap();
    assert_eq!(
        status,
        Status {
            supervisor_pid: 7,
            config: "<embedded default>".to_string(),
            upgrade_phase: "idle".to_string(),
            ..Status::default()
        }
    );
    assert_eq!(status.upgrades.finished(), 0);
}

#[tokio::test]
async fn upgrade_sends_absolute_paths_and_the_open_binary_and_reports_success() {
    let mut fx = start(happy);
    std::fs::create_dir(fx.dir.path().join("bin")).unwrap();
    let worker = fx.dir.path().join("bin/baton-worker");
    std::fs::write(&worker, "#!/bin/sh\n").unwrap();
    let (code, stdout, stderr) = run(baton()
        .args(["upgrade", "--binary", "bin/baton-worker", "-c", "new.toml"])
        .arg("--control-socket")
        .arg(&fx.path)
        .current_dir(fx.dir.path()))
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "upgrade succeeded (generation 1 -> 2, 12 migrated, 0 lost, 840 ms)\n"
    );
    let dir = fx.dir.path().canonicalize().unwrap();
    assert_eq!(
        fx.seen.recv().await.unwrap(),
        Request::Upgrade {
            binary: Some(dir.join("bin/baton-worker")),
            config: Some(dir.join("new.toml")),
            binary_attached: true,
        }
    );
    // The file the CLI opened, not a path to open again.
    assert_eq!(
        fx.files.recv().await.unwrap(),
        Some(identity(&std::fs::metadata(&worker).unwrap()))
    );
}

#[tokio::test]
async fn a_binary_the_cli_cannot_open_goes_as_a_path() {
    let mut fx = start(happy);
    let (code, _, stderr) = run(baton()
        .args(["upgrade", "--binary", "missing/baton-worker"])
        .arg("--control-socket")
        .arg(&fx.path)
        .current_dir(fx.dir.path()))
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(matches!(
        fx.seen.recv().await.unwrap(),
        Request::Upgrade {
            binary: Some(_),
            binary_attached: false,
            ..
        }
    ));
    assert_eq!(fx.files.recv().await.unwrap(), None);
}

#[tokio::test]
async fn descriptors_must_match_what_the_request_announces() {
    let mut fx = start(happy);
    let file = std::fs::File::open(fx.dir.path()).unwrap();
    let announced = Request::Upgrade {
        binary: Some("/opt/new/baton-worker".into()),
        config: None,
        binary_attached: true,
    };
    // Announced, but nothing attached.
    let Reply::Error { reason } = call(&fx.path, &announced).await.unwrap() else {
        panic!("an announced binary without its descriptor was accepted");
    };
    assert!(reason.contains("0 descriptors"), "{reason}");
    // Attached, but not announced.
    let fd = std::os::fd::AsFd::as_fd(&file);
    let Reply::Error { reason } = control::call_attaching(&fx.path, &Request::Status, &[fd])
        .await
        .unwrap()
    else {
        panic!("a descriptor nobody announced was accepted");
    };
    assert!(reason.contains("carries none"), "{reason}");
    // Announced and attached: through to the main loop.
    assert_eq!(
        control::call_attaching(&fx.path, &announced, &[fd])
            .await
            .unwrap(),
        happy(&announced)
    );
    assert_eq!(fx.seen.recv().await.unwrap(), announced);
    assert_eq!(
        fx.files.recv().await.unwrap(),
        Some(identity(&file.metadata().unwrap()))
    );
}

#[tokio::test]
async fn rollback_and_stop_succeed() {
    let mut fx = start(happy);
    let (code, stdout, stderr) = run(baton()
        .arg("rollback")
        .arg("--control-socket")
        .arg(&fx.path))
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("rollback succeeded"), "{stdout}");
    assert_eq!(fx.seen.recv().await.unwrap(), Request::Rollback);

    let (code, stdout, stderr) =
        run(baton().arg("stop").arg("--control-socket").arg(&fx.path)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "stopped\n");
    assert_eq!(fx.seen.recv().await.unwrap(), Request::Stop);
}

#[tokio::test]
async fn failures_exit_1_with_the_reason() {
    let fx = start(unhappy);
    let socket = |c: &mut tokio::process::Command| {
        c.arg("--control-socket").arg(&fx.path);
    };

    let mut upgrade = baton();
    socket(upgrade.arg("upgrade"));
    let (code, stdout, stderr) = run(&mut upgrade).await;
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("rolled back: worker 2 exited with status 3"),
        "{stderr}"
    );

    let mut rollback = baton();
    socket(rollback.arg("rollback"));
    let (code, _, stderr) = run(&mut rollback).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("refused: no previous generation"),
        "{stderr}"
    );

    for command in ["status", "stop"] {
        let mut cli = baton();
        socket(cli.arg(command));
        let (code, _, stderr) = run(&mut cli).await;
        assert_eq!(code, Some(1), "{command}");
        assert_eq!(stderr, "baton: an upgrade is in progress\n", "{command}");
    }
}

#[tokio::test]
async fn an_unreachable_supervisor_exits_69_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.sock");
    let (code, _, stderr) = run(baton().arg("status").arg("--control-socket").arg(&absent)).await;
    assert_eq!(code, Some(69));
    assert!(stderr.contains(&*absent.to_string_lossy()), "{stderr}");

    // And the library says which kind of failure it was.
    let err = call(&absent, &Request::Status).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");

    // A stale socket file: nobody listening (ECONNREFUSED) is the same.
    let stale = dir.path().join("stale.sock");
    stale_socket(&stale);
    let (code, _, stderr) = run(baton().arg("stop").arg("--control-socket").arg(&stale)).await;
    assert_eq!(code, Some(69));
    assert!(stderr.contains(&*stale.to_string_lossy()), "{stderr}");
}

// === where the socket is: flag > env > config > default ===

/// The socket each source names does not exist, so the CLI exits 69 and
/// its message says which one it picked.
#[tokio::test]
async fn the_socket_is_found_by_flag_then_env_then_config() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag.sock");
    let env = dir.path().join("env.sock");
    let from_config = dir.path().join("config.sock");
    let config = dir.path().join("baton.toml");
    std::fs::write(
        &config,
        format!(
            "[supervisor]\ncontrol_socket = \"{}\"\n",
            from_config.display()
        ),
    )
    .unwrap();
    let picked = |stderr: &str| {
        [&flag, &env, &from_config]
            .into_iter()
            .filter(|p| stderr.contains(&*p.to_string_lossy()))
            .cloned()
            .collect::<Vec<_>>()
    };

    let (code, _, stderr) = run(baton()
        .arg("status")
        .arg("--control-socket")
        .arg(&flag)
        .arg("-c")
        .arg(&config)
        .env(control::SOCKET_ENV, &env))
    .await;
    assert_eq!(code, Some(69), "{stderr}");
    assert_eq!(picked(&stderr), std::slice::from_ref(&flag), "{stderr}");

    let (code, _, stderr) = run(baton()
        .arg("status")
        .arg("-c")
        .arg(&config)
        .env(control::SOCKET_ENV, &env))
    .await;
    assert_eq!(code, Some(69), "{stderr}");
    assert_eq!(picked(&stderr), std::slice::from_ref(&env), "{stderr}");

    let (code, _, stderr) = run(baton().arg("status").arg("-c").arg(&config)).await;
    assert_eq!(code, Some(69), "{stderr}");
    assert_eq!(
        picked(&stderr),
        std::slice::from_ref(&from_config),
        "{stderr}"
    );

    // Set but empty counts as unset.
    let (code, _, stderr) = run(baton()
        .arg("status")
        .arg("-c")
        .arg(&config)
        .env(control::SOCKET_ENV, ""))
    .await;
    assert_eq!(code, Some(69), "{stderr}");
    assert_eq!(
        picked(&stderr),
        std::slice::from_ref(&from_config),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_config_found_socket_reaches_the_supervisor() {
    let fx = start(happy);
    let config = fx.dir.path().join("baton.toml");
    std::fs::write(
        &config,
        format!("[supervisor]\ncontrol_socket = \"{}\"\n", fx.path.display()),
    )
    .unwrap();
    let (code, stdout, stderr) = run(baton().arg("status").arg("-c").arg(&config)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("supervisor    pid 4242"), "{stdout}");
}

#[tokio::test]
async fn a_bad_config_is_a_config_error_not_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[supervisor]\ncontrol_sokcet = \"/x.sock\"\n").unwrap();
    let (code, _, stderr) = run(baton().arg("status").arg("-c").arg(&config)).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("bad.toml:2:1"), "{stderr}");

    let absent = dir.path().join("absent.toml");
    let (code, _, stderr) = run(baton().arg("stop").arg("-c").arg(&absent)).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("absent.toml"), "{stderr}");

    // With the socket given, the config is not read to find it.
    let socket = dir.path().join("given.sock");
    let (code, _, stderr) = run(baton()
        .arg("status")
        .arg("-c")
        .arg(&config)
        .arg("--control-socket")
        .arg(&socket))
    .await;
    assert_eq!(code, Some(69), "{stderr}");
}

#[test]
fn the_default_socket_is_the_configs_default() {
    let default = baton_config::SupervisorView::parse("<default>", "")
        .unwrap()
        .supervisor
        .control_socket;
    assert_eq!(control::socket_path(None, None).unwrap(), default);
    let flag = Path::new("/tmp/x/control.sock");
    assert_eq!(
        control::socket_path(Some(flag), Some(Path::new("/nonexistent.toml"))).unwrap(),
        flag
    );
}
