//! The admin endpoint's HTTP/1.1 server: one request per connection, then
//! `Connection: close`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::http::{MAX_BODY, MAX_HEAD, Request, Response, parse_head};
use super::{Access, AdminState};

/// How long a client may take to send its request, and to take the
/// response: the admin endpoint is local and fast, a client this slow is
/// stuck.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// After a failed accept (out of fds, say), how long to wait before the
/// next: long enough not to spin, short enough to serve again soon.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `listener` (an admin address with `access`) until the task is
/// aborted.
pub async fn serve(listener: TcpListener, state: AdminState, access: Access) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, state.clone(), access));
            }
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, state: AdminState, access: Access) {
    let response = match tokio::time::timeout(IO_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(Ok(request))) => super::router::route(&request, &state, access),
        Ok(Ok(Err(response))) => response,
        Ok(Err(e)) => {
            debug!(error = %e, "admin request");
            return;
        }
        Err(_) => return,
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&response.encode()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads the request head and its body (discarded); `Err(response)` for a
/// malformed or oversized one.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Result<Request, Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (request, head_len, body_len) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Err(Response::text(400, "bad request: incomplete head")));
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) if buf.len() < MAX_HEAD => continue,
            Ok(None) => return Ok(Err(Response::text(400, "bad request: head too large"))),
            Err(response) => return Ok(Err(response)),
        }
    };
    if body_len > MAX_BODY {
        return Ok(Err(Response::text(
            413,
            "request body too large: the admin API takes its parameters in the query",
        )));
    }
    let mut have = buf.len() - head_len;
    while have < body_len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        have += n;
    }
    Ok(Ok(request))
}
