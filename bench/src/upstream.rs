//! The upstream echo server, in a child process of its own.
//!
//! Why a child: with 5,000 connections the bench holds 5,000 client
//! sockets; an in-process upstream would add 5,000 more, and the open-file
//! limit here is 20,000 per process and cannot be raised. A separate
//! process also keeps the upstream's work out of the client's runtime, so
//! the client's timestamps measure baton and the kernel, not a scheduler
//! shared with the echo tasks.
//!
//! Protocol with the parent: the child (`migration --upstream`) binds
//! 127.0.0.1:0, prints `listening <addr>` as its first stdout line, echoes
//! on every connection, and exits when its stdin reaches EOF (the parent
//! closed it, or died). [`serve_child`] and [`Upstream::spawn`] are that
//! protocol for any server: the Bolt benchmark's server child
//! (`bolt --server`) speaks it too.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};

use crate::error::{Context, Result, failed};

/// The upstream's accept queue. baton's worker connects upstream as fast
/// as clients arrive; a full queue would turn a burst into SYN retries
/// (a one-second stall) and distort connection set-up, not the migration.
const BACKLOG: u32 = 4096;

/// How long the child may take to print its address.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The child side: runs the echo server until stdin closes.
pub fn serve() -> Result<()> {
    serve_child(echo)
}

/// The child side of any server: binds 127.0.0.1:0, prints its address,
/// runs `handle` on every accepted connection, returns once stdin closes.
pub fn serve_child<F, Fut>(handle: F) -> Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // One thread: the servers answer small messages, and the bench machine
    // has two cores to share between client, baton and this.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(|| "start the upstream runtime".to_string())?;
    runtime.block_on(async {
        let socket = TcpSocket::new_v4().context(|| "upstream socket".to_string())?;
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .context(|| "bind the upstream to 127.0.0.1:0".to_string())?;
        let listener = socket
            .listen(BACKLOG)
            .context(|| "listen on the upstream socket".to_string())?;
        let addr = listener
            .local_addr()
            .context(|| "the upstream's address".to_string())?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening {addr}").context(|| "print the address".to_string())?;
            out.flush().context(|| "print the address".to_string())?;
        }
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(handle(stream));
                    }
                    // Out of fds, say: keep serving the connections we have.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        };
        // A blocking read on the blocking pool: tokio's async stdin needs
        // a feature nothing else in the workspace wants.
        let parent_gone = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
        });
        tokio::select! {
            () = accept => {}
            _ = parent_gone => {}
        }
        Ok(())
    })
}

/// Writes back what it reads; passes end-of-stream on.
async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.split();
    let _ = tokio::io::copy(&mut rd, &mut wr).await;
    let _ = wr.shutdown().await;
}

/// The parent's handle on the upstream child.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    // Killed on drop; closing its stdin also ends it.
    child: Child,
}

impl Upstream {
    /// Starts `exe --upstream` and learns its address.
    pub async fn start(exe: &Path) -> Result<Upstream> {
        Upstream::spawn(exe, "--upstream").await
    }

    /// Starts `exe flag`, a child that speaks [`serve_child`]'s protocol,
    /// and learns its address.
    pub async fn spawn(exe: &Path, flag: &str) -> Result<Upstream> {
        Upstream::spawn_with(exe, &[flag]).await
    }

    /// Starts `exe args…`, a child that speaks [`serve_child`]'s protocol,
    /// and learns its address.
    pub async fn spawn_with(exe: &Path, args: &[&str]) -> Result<Upstream> {
        let flag = args.join(" ");
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context(|| format!("start the upstream child {} {flag}", exe.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("the upstream child has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| failed("the upstream child printed no address within 10s"))?
            .context(|| "read the upstream child's address".to_string())?
            .ok_or_else(|| failed("the upstream child exited before printing its address"))?;
        let addr = first
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| failed(format!("the upstream child printed {first:?}")))?;
        Ok(Upstream { addr, child })
    }

    /// The child's pid (`None` once it has been waited for).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
