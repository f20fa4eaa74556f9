//! Throughput of the ctrl channel: small messages per second, and fds per
//! second in full datagrams and through `send_listeners` batching.
//!
//! Each iteration sends and then receives on one current-thread runtime,
//! so a figure is the cost of one `sendmsg` plus one `recvmsg` (and, for
//! fds, installing and closing them on the receiving side) with no
//! scheduling between threads.
//!
//! Run with `cargo bench -p baton-ipc --bench ctrl`.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to measure: fail loudly"
)]

use std::fs::File;
use std::hint::black_box;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use baton_ipc::{Channel, ListenerBatch, MAX_FDS, Message, Ready};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Listeners in the batching benchmark: several datagrams' worth.
const LISTENERS: usize = 1000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

fn dev_nulls(count: usize) -> Vec<File> {
    (0..count)
        .map(|_| File::open("/dev/null").expect("open /dev/null"))
        .collect()
}

fn messages(c: &mut Criterion) {
    let runtime = runtime();
    let (a, b) = {
        let _entered = runtime.enter();
        Channel::pair().expect("socketpair")
    };
    let ready = Message::from(Ready {
        pid: 4242,
        listeners: 3,
    });

    let mut group = c.benchmark_group("messages");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ready", |bench| {
        bench.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    a.send(&ready, &[]).await.expect("send");
                    black_box(b.recv().await.expect("recv"));
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

fn fds(c: &mut Criterion) {
    let runtime = runtime();
    let (a, b) = {
        let _entered = runtime.enter();
        Channel::pair().expect("socketpair")
    };

    let mut group = c.benchmark_group("fds");

    // One full datagram: MAX_FDS fds and their names.
    let files = dev_nulls(MAX_FDS);
    let borrowed: Vec<BorrowedFd<'_>> = files.iter().map(AsFd::as_fd).collect();
    let batch = Message::from(ListenerBatch {
        names: (0..MAX_FDS).map(|i| format!("listener-{i}")).collect(),
        last: true,
    });
    group.throughput(Throughput::Elements(MAX_FDS as u64));
    group.bench_function("listener_batch_253", |bench| {
        bench.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    a.send(&batch, &borrowed).await.expect("send");
                    // Dropping closes the received fds: part of the cost.
                    black_box(b.recv().await.expect("recv"));
                }
                start.elapsed()
            })
        });
    });

    // Many listeners through the batching API.
    let listeners: Vec<(String, File)> = dev_nulls(LISTENERS)
        .into_iter()
        .enumerate()
        .map(|(i, file)| (format!("listener-{i}"), file))
        .collect();
    group.throughput(Throughput::Elements(LISTENERS as u64));
    group.bench_function("send_listeners_1000", |bench| {
        bench.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    a.send_listeners(&listeners).await.expect("send");
                    black_box(b.recv_listeners().await.expect("recv"));
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

fn config() -> Criterion {
    // Each benchmark settles well within these; the whole run stays
    // around half a minute.
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = messages, fds
}
criterion_main!(benches);
