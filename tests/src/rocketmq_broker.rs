//! A real Apache RocketMQ (issue 18): its name server and broker, and the
//! official Java client as the application, from the Maven project in
//! `tests/interop/rocketmq/` (built by `.ci/run`; see its README).
//!
//! * [`RocketMq::start`] runs `Launcher` (rocketmq-namesrv and
//!   rocketmq-broker in one JVM, remoting mode) in a temp dir; the JVM
//!   picks free loopback ports itself and prints them in its `ready` line,
//!   after the topics asked for are registered with the name server. Drop
//!   closes its standard input, which halts the JVM at once (and so does
//!   the death of the test process); a JVM still alive after
//!   [`STOP_TIMEOUT`] is killed. Nothing is left behind: the temp dir holds
//!   the store and every log (`user.home`). [`RocketMq::restart_broker`]
//!   restarts the broker alone, on its address and store, as a broker
//!   process stopping cleanly and starting again.
//! * [`run_client`] runs `Client` (rocketmq-client: sync, async, oneway and
//!   batch sends, a transactional producer, a push-consumer group) to the
//!   end and parses its JSON lines into a [`ClientRun`]; the counts a test
//!   asserts are computed here from the per-message lines, not taken from
//!   the client's own summary.
//! * [`remoting_call`] sends one request on a fresh connection and returns
//!   the answer frame as it came: how the fixtures of the worker's
//!   RocketMQ route rewriting are captured from the real name server.
//!
//! The remoting frame (RocketMQ `RemotingCommand`, JSON serialisation): a
//! 4-byte big-endian length of what follows, a 4-byte header length whose
//! top byte is the serialisation type (0 = JSON), the header, the body.
//!
//! A missing Maven build is a failed test with the command to run, never a
//! skip.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long the name server and broker may take to print `ready`: a JVM
/// start, RocketMQ's initialisation (store, ~100 service threads) and the
/// topic registration take 4–15 s on a loaded 2-core machine; this bounds
/// a hang, it is no performance claim.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a halted (or graceful) launcher JVM may take to exit before it
/// is killed: a halt is immediate; this only covers a wedged JVM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a broker restart ([`RocketMq::restart_broker`]) may take: a
/// clean shutdown joins RocketMQ's service threads, and the new broker
/// initialises its store and registers its topics (a few seconds each on
/// a loaded 2-core machine); this bounds a hang.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one remoting call in [`remoting_call`] may wait for its answer
/// (the name server answers from memory, in microseconds).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// JVM options of every Java process here. The serial collector: two
/// cores are shared by the broker, the client and baton. The logback
/// status listener: RocketMQ's shaded logback prints its configuration
/// status to stdout otherwise, among the JSON lines.
const JVM_OPTS: &[&str] = &[
    "-XX:+UseSerialGC",
    "-Dlogback.statusListenerClass=org.apache.rocketmq.logging.ch.qos.logback.core.status.NopStatusListener",
];

/// RocketMQ request codes the tests name (`RequestCode.java`).
pub mod code {
    /// client → broker (broker → client: CHECK_TRANSACTION_STATE below).
    pub const SEND_MESSAGE: i32 = 10;
    /// broker → producer: commit or roll back this half message?
    pub const CHECK_TRANSACTION_STATE: i32 = 39;
    /// broker → consumer: the group's members changed, rebalance.
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    /// client → name server: a topic's route (brokers and queues).
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    /// client → name server: every broker of every cluster.
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
}

// === the Maven project ===

/// `tests/interop/rocketmq/`.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/rocketmq")
}

/// The Java classpath of the built project: its classes and the
/// dependency jars listed by the build (`target/classpath.txt`).
pub fn classpath() -> String {
    let dir = project_dir();
    let list = dir.join("target/classpath.txt");
    let jars = std::fs::read_to_string(&list).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the RocketMQ interop project is not built; run \
             `mvn -B -q -f tests/interop/rocketmq/pom.xml package` (.ci/run does)",
            list.display()
        )
    });
    format!("{}:{}", dir.join("target/classes").display(), jars.trim())
}

fn java(home: &Path, heap: &str, main: &str) -> Command {
    let mut cmd = Command::new("java");
    cmd.args(JVM_OPTS)
        .arg(format!("-Xmx{heap}"))
        .arg(format!("-Duser.home={}", home.display()))
        .arg("-cp")
        .arg(classpath())
        .arg(main);
    cmd
}

// === name server + broker ===

/// A running name server and broker; stopped (halted) on drop.
#[derive(Debug)]
pub struct RocketMq {
    /// The name server's address (what clients are configured with).
    pub namesrv: SocketAddr,
    /// The broker's remoting address, as it registered itself.
    pub broker: SocketAddr,
    /// The broker's cluster and name.
    pub cluster: String,
    pub broker_name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The launcher's stdout lines after `ready` (its events).
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl RocketMq {
    /// Starts a name server and a broker with `topics` (4 queues each),
    /// and waits for them to serve.
    pub fn start(topics: &[&str]) -> RocketMq {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let mut child = java(&dir.path().join("home"), "768m", "baton.rocketmq.Launcher")
            .arg("--dir")
            .arg(dir.path().join("rocketmq"))
            .args(["--topics", &topics.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn java (the JDK is installed by .ci/run)");
        let stdin = child.stdin.take();
        let lines = lines_of(child.stdout.take().expect("stdout"), "rocketmq");
        echo_lines(child.stderr.take().expect("stderr"), "rocketmq");
        let mut rmq = RocketMq {
            namesrv: "0.0.0.0:0".parse().expect("addr"),
            broker: "0.0.0.0:0".parse().expect("addr"),
            cluster: String::new(),
            broker_name: String::new(),
            child,
            stdin,
            lines,
            dir,
        };
        let ready = rmq.event("ready", started + START_TIMEOUT);
        let addr = |k: &str| -> SocketAddr {
            ready[k]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("ready line without {k}: {ready}"))
        };
        rmq.namesrv = addr("namesrv");
        rmq.broker = addr("broker");
        rmq.cluster = ready["cluster"].as_str().unwrap_or_default().to_owned();
        rmq.broker_name = ready["broker_name"].as_str().unwrap_or_default().to_owned();
        eprintln!(
            "rocketmq: name server {} broker {} ready in {:.1} s",
            rmq.namesrv,
            rmq.broker,
            started.elapsed().as_secs_f64()
        );
        rmq
    }

    /// The launcher's next event `name` (a JSON line on its stdout), by
    /// `deadline`; a panic naming the logs if none comes.
    fn event(&self, name: &str, deadline: Instant) -> Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line)
                        && v["event"] == name
                    {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "RocketMQ launcher: no {name} event in time (logs: {})",
                    self.dir.path().join("home/logs").display()
                ),
            }
        }
    }

    /// Restarts the broker (not the name server): `Launcher` shuts its
    /// BrokerController down cleanly — its connections closed, offsets
    /// flushed, unregistered from the name server — and starts a new one
    /// on the same ports and store, registered again; returns once it
    /// serves.
    pub fn restart_broker(&self) {
        let started = Instant::now();
        let mut stdin = self.stdin.as_ref().expect("launcher stdin");
        stdin
            .write_all(b"restart-broker\n")
            .and_then(|()| stdin.flush())
            .expect("ask the launcher to restart the broker");
        let done = self.event("broker_restarted", started + RESTART_TIMEOUT);
        assert_eq!(
            done["broker"].as_str(),
            Some(self.broker.to_string().as_str()),
            "restarted on its address: {done}"
        );
        eprintln!(
            "rocketmq: broker {} restarted in {:.1} s",
            self.broker,
            started.elapsed().as_secs_f64()
        );
    }

    /// baton in front of this name server (its answers rewritten,
    /// `rocketmq_brokers`) and of its broker: listeners `namesrv` and
    /// `broker-a` on free loopback ports, clusters of the same names.
    /// `broker_listener` is more of the broker listener's keys (TOML
    /// lines); the caller appends its own tables (`[access_log]`,
    /// `[admin]`).
    pub fn through_baton_config(&self, broker_listener: &str) -> String {
        format!(
            "[[listeners]]\nname = \"namesrv\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\n\
             cluster = \"namesrv\"\nrocketmq_brokers = {{ \"{broker}\" = \"broker-a\" }}\n\n\
             [[listeners]]\nname = \"broker-a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\n\
             cluster = \"broker-a\"\n{broker_listener}\
             # Above the clients' long-polls (the Java client's 30 s, ali-ons' 15 s held).\n\
             request_timeout = \"60s\"\n\n\
             [[clusters]]\nname = \"namesrv\"\nendpoints = [\"{namesrv}\"]\n\n\
             [[clusters]]\nname = \"broker-a\"\nendpoints = [\"{broker}\"]\n\n",
            broker = self.broker,
            namesrv = self.namesrv,
        )
    }

    /// The temp dir (store, logs under `home/logs/rocketmqlogs`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The launcher's pid (a test can check it is gone after drop).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RocketMq {
    // Sync code (drop), never on a runtime thread: polling the child's exit.
    #[allow(clippy::disallowed_methods)]
    fn drop(&mut self) {
        // EOF on its stdin halts the launcher's JVM (Runtime.halt).
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// The lines of a child's stream, through a channel, each echoed to the
/// test's stderr with `name` (shown when a test fails).
fn lines_of(stream: impl Read + Send + 'static, name: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if !line.contains("\"event\":\"consumed\"") && !line.contains("\"event\":\"sent\"") {
                eprintln!("{name}: {line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn echo_lines(stream: impl Read + Send + 'static, name: &'static str) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("{name}: {line}");
        }
    });
}

// === the client application ===

/// What to run: message counts per send mode (see `Client.java`).
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub topic: String,
    pub group: String,
    pub consumers: u32,
    pub sync: u32,
    pub async_: u32,
    pub oneway: u32,
    pub batch: u32,
    pub tx: u32,
    pub size: u32,
    /// The client gives up waiting for consumption after this long.
    pub consume_timeout: Duration,
    /// A pause after each sync send (`--sync-interval-ms`).
    pub sync_interval: Duration,
    /// Every client instance's heartbeat to the brokers (`--heartbeat-ms`;
    /// the Java client's default is 30 s).
    pub heartbeat: Duration,
    /// A lite pull consumer too (the pull API, group `<group>-pull`,
    /// `--pull-consumer`): the run also waits for it to poll every key.
    pub pull_consumer: bool,
}

impl ClientSpec {
    pub fn new(topic: &str) -> ClientSpec {
        ClientSpec {
            topic: topic.to_owned(),
            group: "baton-group".to_owned(),
            consumers: 2,
            sync: 0,
            async_: 0,
            oneway: 0,
            batch: 0,
            tx: 0,
            size: 1024,
            consume_timeout: Duration::from_secs(60),
            sync_interval: Duration::ZERO,
            heartbeat: Duration::from_secs(30),
            pull_consumer: false,
        }
    }
}

/// One run of the client, its lines parsed.
#[derive(Debug, Default)]
pub struct ClientRun {
    /// Every JSON line, in order.
    pub events: Vec<Value>,
    /// Keys acknowledged as sent (SEND_OK; oneway: the call returned).
    pub sent: Vec<String>,
    /// The send events (`sent`, `send_failed`), in order, as indexes into
    /// `events`.
    pub sends: Vec<usize>,
    /// Sends that failed, with the error.
    pub send_failures: Vec<Value>,
    /// The keys of this run the lite pull consumer polled.
    pub pulled: std::collections::HashSet<String>,
    /// How many times each key of this run was delivered to the group.
    pub consumed: HashMap<String, u32>,
    /// Keys consumed per consumer.
    pub consumed_by: BTreeMap<String, usize>,
    /// Each consumer's queue-share changes.
    pub rebalances: Vec<Value>,
    /// Broker → client requests seen, by request code.
    pub broker_requests: BTreeMap<i64, usize>,
    /// Keys whose transaction the broker checked (answered COMMIT).
    pub tx_checks: Vec<String>,
    /// The client's own summary line (rates, latencies).
    pub summary: Value,
    /// How long the client process ran.
    pub elapsed: Duration,
}

impl ClientRun {
    /// Keys sent but never consumed.
    pub fn missing(&self) -> Vec<&str> {
        let mut m: Vec<&str> = self
            .sent
            .iter()
            .filter(|k| !self.consumed.contains_key(*k))
            .map(String::as_str)
            .collect();
        m.sort_unstable();
        m
    }

    /// Deliveries beyond the first, over all keys.
    pub fn duplicates(&self) -> u64 {
        self.consumed
            .values()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum()
    }
}

/// Runs the client against `namesrv` to its end (all sent keys consumed or
/// its own timeout), bounded by the consume timeout plus [`START_TIMEOUT`].
pub fn run_client(namesrv: SocketAddr, spec: &ClientSpec) -> ClientRun {
    run_client_with(namesrv, spec, |_| {})
}

/// [`run_client`], calling `on_event` with each JSON line as it comes (a
/// test acts on the run's progress: upgrades after so many sends).
pub fn run_client_with(
    namesrv: SocketAddr,
    spec: &ClientSpec,
    on_event: impl FnMut(&Value),
) -> ClientRun {
    let home = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let run_id = format!("run{}", rand::random::<u32>());
    let mut child = java(home.path(), "512m", "baton.rocketmq.Client")
        .args(["--namesrv", &namesrv.to_string()])
        .args(["--topic", &spec.topic])
        .args(["--group", &spec.group])
        .args(["--run-id", &run_id])
        .args(["--consumers", &spec.consumers.to_string()])
        .args(["--sync", &spec.sync.to_string()])
        .args(["--async", &spec.async_.to_string()])
        .args(["--oneway", &spec.oneway.to_string()])
        .args(["--batch", &spec.batch.to_string()])
        .args(["--tx", &spec.tx.to_string()])
        .args(["--size", &spec.size.to_string()])
        .args([
            "--timeout-ms",
            &spec.consume_timeout.as_millis().to_string(),
        ])
        .args([
            "--sync-interval-ms",
            &spec.sync_interval.as_millis().to_string(),
        ])
        .args(["--heartbeat-ms", &spec.heartbeat.as_millis().to_string()])
        .args(["--pull-consumer", &spec.pull_consumer.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn java (the JDK is installed by .ci/run)");
    let deadline = started + spec.consume_timeout + START_TIMEOUT;
    let mut run = ClientRun::default();
    (run.events, _) = json_lines_to_end(&mut child, "client", deadline, on_event);
    run.elapsed = started.elapsed();
    for (index, v) in run.events.iter().enumerate() {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        match v["event"].as_str().unwrap_or_default() {
            "sent" => {
                run.sent.push(s("key"));
                run.sends.push(index);
            }
            "send_failed" => {
                run.send_failures.push(v.clone());
                run.sends.push(index);
            }
            // Only this run's keys: a group new to a topic that an earlier
            // run filled consumes that run's messages too.
            "consumed" if !s("key").starts_with(&format!("{run_id}-")) => {}
            "consumed" => {
                *run.consumed.entry(s("key")).or_default() += 1;
                *run.consumed_by.entry(s("consumer")).or_default() += 1;
            }
            "rebalance" => run.rebalances.push(v.clone()),
            "broker_request" => {
                *run.broker_requests
                    .entry(v["code"].as_i64().unwrap_or(-1))
                    .or_default() += 1;
            }
            "tx_check" => run.tx_checks.push(s("key")),
            "pulled" => {
                run.pulled.insert(s("key"));
            }
            "summary" => run.summary = v.clone(),
            _ => {}
        }
    }
    run
}

// === one remoting call ===

/// One remoting frame, split.
#[derive(Debug, Clone)]
pub struct RemotingFrame {
    /// The whole frame as it was on the wire (length prefix included).
    pub raw: Vec<u8>,
    /// The JSON header, parsed.
    pub header: Value,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Sends one request (`code`, `ext_fields`, header `version`) on a fresh
/// connection to `addr` and returns the answer frame.
pub fn remoting_call(
    addr: SocketAddr,
    code: i32,
    ext_fields: Value,
    version: i32,
) -> RemotingFrame {
    let header = json!({
        "code": code, "extFields": ext_fields, "flag": 0, "language": "JAVA",
        "opaque": 1, "serializeTypeCurrentRPC": "JSON", "version": version,
    });
    let header = serde_json::to_vec(&header).expect("json");
    let header_len = u32::try_from(header.len()).expect("header fits");
    let mut frame = Vec::new();
    frame.extend_from_slice(&(4 + header_len).to_be_bytes());
    frame.extend_from_slice(&header_len.to_be_bytes());
    frame.extend_from_slice(&header);
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(CALL_TIMEOUT)).expect("timeout");
    s.write_all(&frame).expect("write request");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("read answer length");
    let n = u32::from_be_bytes(len) as usize;
    let mut rest = vec![0u8; n];
    s.read_exact(&mut rest).expect("read answer");
    let hl = (u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) & 0x00ff_ffff) as usize;
    let header: Value = serde_json::from_slice(&rest[4..4 + hl]).expect("JSON header");
    let body = rest[4 + hl..].to_vec();
    let mut raw = len.to_vec();
    raw.extend_from_slice(&rest);
    RemotingFrame { raw, header, body }
}

// === other clients ===

/// Reads another client's JSON lines (its stdout; its stderr echoed) to
/// their end, calling `on_event` with each as it comes, then waits for it
/// and returns the lines and its exit status. Past `deadline` the child
/// is killed and the test fails, naming `name`.
pub fn json_lines_to_end(
    child: &mut Child,
    name: &'static str,
    deadline: Instant,
    mut on_event: impl FnMut(&Value),
) -> (Vec<Value>, std::process::ExitStatus) {
    let lines = lines_of(child.stdout.take().expect("stdout"), name);
    echo_lines(child.stderr.take().expect("stderr"), name);
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    on_event(&v);
                    events.push(v);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not finish in time");
            }
        }
    }
    let status = child.wait().expect("wait for the client");
    (events, status)
}
