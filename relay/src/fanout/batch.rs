//! What an upstream task hands the merge at once: every response its peer's
//! stream has ready, up to `UPSTREAM_BATCH`.
//!
//! Hubble's Go agents send each response in its own HTTP/2 frame, so a peer's
//! stream often has only one or two responses ready when its task runs. Yielding
//! once to let more arrive before handing them on was tried and gave nothing
//! measurable (docs/relay.md), so a batch is what is there, and nothing waits.

use std::task::Poll;

use futures::StreamExt;
use tonic::Status;

use crate::merge::Responses;

/// Most responses of one peer handed over at once.
pub(super) const UPSTREAM_BATCH: usize = 128;

/// How a peer's stream ended.
pub(super) enum End {
    Finished,
    Failed(Status),
}

/// Responses for one send to the merge, and the stream's end if it came.
/// Sized by what arrived, not by `UPSTREAM_BATCH`.
pub(super) struct Batch<M> {
    pub items: Vec<M>,
    pub end: Option<End>,
}

impl<M> Batch<M> {
    /// A batch opened by what the stream yielded when its task woke, with room for
    /// `expected` responses (what the previous batch held: a stream's batches run at
    /// about the size its peer's framing gives, and growing from empty reallocated a
    /// full one six times).
    pub(super) fn starting_with(first: Option<Result<M, Status>>, expected: usize) -> Self {
        let mut batch = Self {
            items: Vec::with_capacity(expected.clamp(1, UPSTREAM_BATCH)),
            end: None,
        };
        batch.add(first);
        batch
    }

    /// Adds what `stream` has ready without waiting, up to `UPSTREAM_BATCH`.
    pub(super) async fn fill(&mut self, stream: &mut Responses<M>) {
        std::future::poll_fn(|cx| {
            while self.end.is_none() && self.items.len() < UPSTREAM_BATCH {
                match stream.poll_next_unpin(cx) {
                    Poll::Ready(next) => self.add(next),
                    Poll::Pending => break,
                }
            }
            Poll::Ready(())
        })
        .await;
    }

    fn add(&mut self, next: Option<Result<M, Status>>) {
        match next {
            Some(Ok(item)) => self.items.push(item),
            Some(Err(status)) => self.end = Some(End::Failed(status)),
            None => self.end = Some(End::Finished),
        }
    }
}

#[cfg(test)]
mod tests;
