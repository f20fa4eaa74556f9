//! The Bolt server the benchmark measures against: it answers every
//! request at once with a response carrying the request's id and content,
//! and answers heartbeats. It runs in a child process (`bolt --server`,
//! [`crate::upstream::serve_child`]'s protocol), so that its CPU time is
//! its own in the accounting and its tasks never share a scheduler with
//! the load generator's timestamps.
//!
//! Per connection it reads what is there, answers every complete request
//! into one buffer and writes that buffer in one go: a burst of requests
//! costs one read and one write, as in a real Bolt server's I/O thread.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bolt::frame::{self, Command, Type};
use crate::error::Result;

/// Bytes read per syscall.
const READ_CHUNK: usize = 64 * 1024;

/// The child side: serves until the parent closes stdin.
pub fn serve() -> Result<()> {
    crate::upstream::serve_child(connection)
}

/// Serves one connection until it closes or sends something that is not
/// Bolt v1 (then it is closed: the proxy or client in front garbled it,
/// and the client side counts the consequences).
async fn connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut read_buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut write_buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        read_buf.reserve(READ_CHUNK);
        match stream.read_buf(&mut read_buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut at = 0;
        loop {
            match frame::decode(&read_buf[at..]) {
                Ok(Some(f)) => {
                    let content = at + f.content.start..at + f.content.end;
                    // Oneway requests and stray responses: nothing to say.
                    if let (Type::Request, Command::Request | Command::Heartbeat) =
                        (f.kind, f.command)
                    {
                        frame::encode_response(f.id, f.command, &read_buf[content], &mut write_buf);
                    }
                    at += f.len;
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("bolt server: closing a connection: {e}");
                    return;
                }
            }
        }
        read_buf.drain(..at);
        if !write_buf.is_empty() {
            if stream.write_all(&write_buf).await.is_err() {
                return;
            }
            write_buf.clear();
        }
    }
}
