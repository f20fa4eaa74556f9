//! Idle keep-alive connections to HTTP/1.1 upstreams, per cluster.
//!
//! A connection goes back to the pool only after a complete exchange whose
//! response allowed keep-alive; it comes out only if it still looks
//! healthy (no end of stream, no unsolicited bytes) and has not idled past
//! [`MAX_IDLE`]. A reused connection can still turn out to be closed by the
//! server at the moment of reuse; the proxy then retries on a new one when
//! nothing of the response had arrived.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections kept per cluster: enough for a burst's worth of
/// concurrency, bounded so an idle proxy holds few fds.
const MAX_IDLE_PER_CLUSTER: usize = 128;

/// Below the common server keep-alive timeouts (nginx 75 s, Apache 5 s is
/// the outlier the staleness check catches).
pub const MAX_IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct H1Pool {
    idle: Mutex<HashMap<usize, Vec<(TcpStream, Instant)>>>,
}

impl H1Pool {
    /// A healthy idle connection to `cluster`, if any.
    pub fn take(&self, cluster: usize) -> Option<TcpStream> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(&cluster)?;
        while let Some((stream, since)) = list.pop() {
            if since.elapsed() < MAX_IDLE && healthy(&stream) {
                return Some(stream);
            }
        }
        None
    }

    pub fn put(&self, cluster: usize, stream: TcpStream) {
        let mut idle = self.idle.lock();
        let list = idle.entry(cluster).or_default();
        if list.len() < MAX_IDLE_PER_CLUSTER {
            list.push((stream, Instant::now()));
        }
    }
}

/// An idle connection must have nothing to read: end of stream means the
/// server closed it, bytes mean it is out of step.
fn healthy(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
