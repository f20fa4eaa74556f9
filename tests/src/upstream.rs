//! Upstream servers for the tests, on 127.0.0.1:0 in the test process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server; counts the connections it accepted.
#[derive(Debug)]
pub struct Echo {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(echo(stream));
            }
        });
        Echo { addr, accepted }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Writes back what it reads; passes the client's end of stream on.
async fn echo(stream: TcpStream) {
    let (mut rd, mut wr) = stream.into_split();
    let _ = tokio::io::copy(&mut rd, &mut wr).await;
    let _ = wr.shutdown().await;
}

/// A server whose connections the test drives itself.
#[derive(Debug)]
pub struct Scripted {
    pub addr: SocketAddr,
    listener: TcpListener,
}

impl Scripted {
    pub async fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Scripted {
            addr: listener.local_addr().unwrap(),
            listener,
        }
    }

    pub async fn accept(&self) -> TcpStream {
        self.listener.accept().await.unwrap().0
    }
}

/// An address nothing listens on: bound to port 0, then closed.
pub async fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Writes `data` and reads the same amount back, concurrently; returns
/// what came back.
pub async fn round_trip(stream: TcpStream, data: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = stream.into_split();
    let send = data.to_vec();
    let writer = tokio::spawn(async move {
        wr.write_all(&send).await.unwrap();
        wr
    });
    let mut back = vec![0u8; data.len()];
    rd.read_exact(&mut back).await.unwrap();
    drop(writer.await.unwrap());
    back
}
