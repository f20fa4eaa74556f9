//! Splitting work that does not fit one datagram.
//!
//! A datagram carries at most [`MAX_FDS`] fds and [`MAX_BODY`] bytes of
//! body. [`batches`] cuts a list of items into runs that respect both,
//! measuring each item's exact bincode size; [`Channel::send_listeners`]
//! and [`Channel::recv_listeners`] use it for listening sockets, and the
//! connection handoff uses it for connection state.

use std::os::fd::{AsFd, OwnedFd};

use serde::Serialize;

use crate::frame::{MAX_BODY, MAX_FDS};
use crate::message::{HistogramFamily, Histograms, ListenerBatch, Message, encode};
use crate::{Channel, IpcError};

/// Bytes kept free in each body for the batch's own fields (the vector's
/// length prefix, flags, a sequence number): generous, since varints of
/// those fields are a few bytes each.
const BATCH_OVERHEAD: usize = 256;

/// Splits `items` into consecutive runs of at most [`MAX_FDS`] fds in all
/// (`fds_of` per item) and a serialized size within [`MAX_BODY`].
///
/// An item that alone exceeds either bound is an error: the caller must
/// split its state first.
pub fn batches<T: Serialize>(
    items: Vec<T>,
    fds_of: impl Fn(&T) -> usize,
) -> Result<Vec<Vec<T>>, IpcError> {
    let budget = MAX_BODY - BATCH_OVERHEAD;
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut current = Vec::new();
    let (mut fds, mut bytes) = (0usize, 0usize);
    for item in items {
        let item_fds = fds_of(&item);
        let item_bytes = encode(&item)
            .map_err(|e| IpcError::io("measure batch item")(std::io::Error::other(e)))?
            .len();
        if item_fds > MAX_FDS {
            return Err(IpcError::TooManyFds { count: item_fds });
        }
        if item_bytes > budget {
            return Err(IpcError::TooLarge { len: item_bytes });
        }
        if !current.is_empty() && (fds + item_fds > MAX_FDS || bytes + item_bytes > budget) {
            out.push(std::mem::take(&mut current));
            (fds, bytes) = (0, 0);
        }
        fds += item_fds;
        bytes += item_bytes;
        current.push(item);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Splits a histograms snapshot into messages that each fit a datagram:
/// runs of its series, each series measured exactly as [`batches`]
/// measures items, each family's name, help and bounds counted again in
/// every message it appears in. One message (maybe with no family) when
/// everything fits.
pub fn histogram_batches(histograms: Histograms) -> Result<Vec<Histograms>, IpcError> {
    let budget = MAX_BODY - BATCH_OVERHEAD;
    let mut out = Vec::new();
    let mut current: Vec<HistogramFamily> = Vec::new();
    let mut bytes = 0usize;
    for family in histograms.families {
        let head = HistogramFamily {
            series: Vec::new(),
            ..family
        };
        let head_bytes = size(&head)?;
        // Whether `head` is the last family of `current`.
        let mut open = false;
        for series in family.series {
            let series_bytes = size(&series)?;
            if head_bytes + series_bytes > budget {
                return Err(IpcError::TooLarge {
                    len: head_bytes + series_bytes,
                });
            }
            let needed = series_bytes + if open { 0 } else { head_bytes };
            if bytes + needed > budget {
                out.push(Histograms {
                    families: std::mem::take(&mut current),
                });
                bytes = 0;
                open = false;
            }
            if !open {
                current.push(head.clone());
                bytes += head_bytes;
                open = true;
            }
            if let Some(last) = current.last_mut() {
                last.series.push(series);
            }
            bytes += series_bytes;
        }
    }
    if !current.is_empty() || out.is_empty() {
        out.push(Histograms { families: current });
    }
    Ok(out)
}

/// A value's exact bincode size.
fn size<T: Serialize>(value: &T) -> Result<usize, IpcError> {
    encode(value)
        .map(|b| b.len())
        .map_err(|e| IpcError::io("measure batch item")(std::io::Error::other(e)))
}

impl Channel {
    /// Sends named listening sockets in as many [`ListenerBatch`]es as
    /// needed; the last one has `last` set (an empty list is one empty,
    /// last batch).
    pub async fn send_listeners<F: AsFd>(&self, listeners: &[(String, F)]) -> Result<(), IpcError> {
        let indexed: Vec<(usize, &str)> = listeners
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (i, name.as_str()))
            .collect();
        let runs = batches(indexed, |_| 1)?;
        let count = runs.len();
        for (n, run) in runs.into_iter().enumerate() {
            let names = run.iter().map(|(_, name)| name.to_string()).collect();
            let fds: Vec<_> = run.iter().map(|(i, _)| listeners[*i].1.as_fd()).collect();
            let message = Message::ListenerBatch(ListenerBatch {
                names,
                last: n + 1 == count,
            });
            self.send(&message, &fds).await?;
        }
        Ok(())
    }

    /// Receives what [`Channel::send_listeners`] sent.
    pub async fn recv_listeners(&self) -> Result<Vec<(String, OwnedFd)>, IpcError> {
        let mut out = Vec::new();
        loop {
            let received = self.recv().await?;
            match received.message {
                Message::ListenerBatch(batch) => {
                    out.extend(batch.names.into_iter().zip(received.fds));
                    if batch.last {
                        return Ok(out);
                    }
                }
                Message::Refuse(refuse) => return Err(IpcError::Refused(refuse.reason)),
                other => {
                    return Err(IpcError::Unexpected {
                        expected: "ListenerBatch",
                        got: other.kind(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::HistogramSeries;

    #[test]
    fn batches_respect_the_fd_bound() {
        let runs = batches((0..600u32).collect(), |_| 2).unwrap();
        assert!(runs.iter().all(|r| r.len() * 2 <= MAX_FDS));
        assert_eq!(runs.iter().map(Vec::len).sum::<usize>(), 600);
        let flat: Vec<u32> = runs.into_iter().flatten().collect();
        assert_eq!(flat, (0..600).collect::<Vec<_>>());
    }

    #[test]
    fn batches_respect_the_body_bound() {
        let items: Vec<Vec<u8>> = (0..20).map(|_| vec![7u8; 10_000]).collect();
        let runs = batches(items, |_| 0).unwrap();
        assert!(runs.len() >= 4);
        for run in &runs {
            assert!(encode(run).unwrap().len() <= MAX_BODY);
        }
    }

    #[test]
    fn an_item_too_large_alone_is_an_error() {
        assert!(matches!(
            batches(vec![vec![0u8; MAX_BODY]], |_| 0),
            Err(IpcError::TooLarge { .. })
        ));
        assert!(matches!(
            batches(vec![1u8], |_| MAX_FDS + 1),
            Err(IpcError::TooManyFds { .. })
        ));
    }

    #[test]
    fn histograms_split_into_datagrams_and_keep_every_series() {
        let family = |name: &str, n: usize| HistogramFamily {
            name: name.into(),
            help: "h".repeat(200),
            bounds_us: (1..20).collect(),
            series: (0..n)
                .map(|i| HistogramSeries {
                    labels: vec![("cluster".into(), format!("c{i}"))],
                    buckets: vec![u64::MAX; 20],
                    sum_us: u64::MAX,
                })
                .collect(),
        };
        let all = Histograms {
            families: vec![family("a", 300), family("b", 1), family("c", 700)],
        };
        let runs = histogram_batches(all.clone()).unwrap();
        assert!(runs.len() >= 3, "{} messages", runs.len());
        for run in &runs {
            assert!(encode(run).unwrap().len() <= MAX_BODY);
        }
        // Joined again, in order: the same families and series.
        let mut joined: Vec<HistogramFamily> = Vec::new();
        for family in runs.into_iter().flat_map(|r| r.families) {
            match joined.last_mut() {
                Some(last) if last.name == family.name => last.series.extend(family.series),
                _ => joined.push(family),
            }
        }
        assert_eq!(joined, all.families);
        let empty = histogram_batches(Histograms { families: vec![] }).unwrap();
        assert_eq!(empty, vec![Histograms { families: vec![] }]);
    }

    #[test]
    fn nothing_is_one_empty_batch() {
        let runs = batches(Vec::<u8>::new(), |_| 1).unwrap();
        assert_eq!(runs, vec![Vec::<u8>::new()]);
    }
}
