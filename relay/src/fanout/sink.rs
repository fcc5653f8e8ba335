//! The client's side of a fan-out: merged responses queued in batches towards
//! the client's stream, and the stream tonic polls, one response at a time.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use crate::metrics::RelayMetrics;
use crate::sort_buffer::Release;

/// Batches of responses queued towards one client; a slower client backs up into
/// the upstream streams, whose agents then report what that client lost.
const CLIENT_QUEUE: usize = 8;
/// Most responses handed to the client's stream at once.
const CLIENT_BATCH: usize = 128;

/// The client's stream is over: the client went away, or it was sent its final status.
pub(super) struct ClientGone;

/// Where the merge hands responses for the client.
pub(super) struct ClientSink<M> {
    out: mpsc::Sender<Vec<Result<M, Status>>>,
    /// Responses not yet handed to the client's stream; sent when full and whenever
    /// the merge is about to wait.
    pending: Vec<Result<M, Status>>,
    metrics: RelayMetrics,
    /// When the responses being routed arrived. Read when a batch comes in and again
    /// after each wait for the client, the only place time passes while routing: a
    /// clock read per flow cost more than the rest of routing it.
    arrival: Instant,
}

/// A new sink and the stream that reads it.
pub(super) fn client_sink<M: Send + 'static>(metrics: RelayMetrics) -> (ClientSink<M>, Batches<Result<M, Status>>) {
    let (out, receiver) = mpsc::channel(CLIENT_QUEUE);
    let sink = ClientSink {
        out,
        pending: Vec::with_capacity(CLIENT_BATCH),
        metrics,
        arrival: Instant::now(),
    };
    let batches = Batches {
        receiver,
        current: Vec::new().into_iter(),
    };
    (sink, batches)
}

impl<M: crate::merge::Merge> ClientSink<M> {
    /// When the responses being routed arrived (see `arrival`).
    pub(super) fn arrival(&self) -> Instant {
        self.arrival
    }

    /// Marks that time passed outside routing (a wait, a new batch).
    pub(super) fn stamp_arrival(&mut self) {
        self.arrival = Instant::now();
    }

    /// Queues a response the relay made itself, outside the merge's order (the
    /// opening node status).
    pub(super) fn push(&mut self, item: M) {
        self.pending.push(Ok(item));
    }

    /// Queues `item` for the client; `why` it left the sort buffer, if it was in it.
    pub(super) async fn emit(&mut self, item: M, why: Option<Release>) -> Result<(), ClientGone> {
        if let Some(why) = why {
            self.metrics.released(why);
        }
        if item.counts() {
            self.metrics.flow_forwarded();
        }
        self.pending.push(Ok(item));
        if self.pending.len() >= CLIENT_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Ends the client's stream with `status` after what is queued.
    pub(super) async fn fail(&mut self, status: Status) -> ClientGone {
        self.pending.push(Err(status));
        let _ = self.flush().await;
        ClientGone
    }

    pub(super) async fn flush(&mut self) -> Result<(), ClientGone> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Sized like the last batch: a full-size one per flush was a large allocation
        // (responses sit beside `Status`) that small batches from Go-framed peers
        // paid for every few responses.
        let next = Vec::with_capacity(self.pending.len());
        let batch = std::mem::replace(&mut self.pending, next);
        self.out.send(batch).await.map_err(|_| ClientGone)?;
        // A slow client may have held us up here; later stamps must not predate it.
        self.stamp_arrival();
        Ok(())
    }

    /// Resolves when the client has gone away. Borrows only the sender, so the
    /// future is `Send` without the queued responses being `Sync`.
    pub(super) fn closed(&self) -> impl Future<Output = ()> + Send + '_ {
        self.out.closed()
    }
}

/// The merge's batches, one response at a time, as tonic wants them.
pub(super) struct Batches<T> {
    receiver: mpsc::Receiver<Vec<T>>,
    current: std::vec::IntoIter<T>,
}

// Items are moved out, never pinned in place, so `Batches` may move freely.
impl<T> Unpin for Batches<T> {}

impl<T> Stream for Batches<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.current.next() {
                return Poll::Ready(Some(item));
            }
            match this.receiver.poll_recv(cx) {
                Poll::Ready(Some(batch)) => this.current = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
