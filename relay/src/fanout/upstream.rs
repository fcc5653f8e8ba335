//! One peer's stream for one client request, run as a task that hands the merge
//! batches of whatever the peer had ready: a busy stream costs one channel send
//! per batch, not per response.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::batch::{Batch, End};
use crate::merge::Merge;

/// What upstream tasks report, with the call's number, so the merge can tell them
/// from a call it already replaced or abandoned.
pub(super) enum Upstream<M> {
    Items(Arc<str>, u64, Vec<M>),
    Ended(Arc<str>, u64),
    Failed(Arc<str>, u64, Status),
}

pub(super) struct Call<M: Merge> {
    pub name: Arc<str>,
    pub id: u64,
    pub channel: Channel,
    pub request: Request<M::Request>,
    /// Longest wait for the peer to answer the call.
    pub answer_timeout: Duration,
    /// Longest silence while streaming. Only for bounded (non-follow) requests: an
    /// agent answering one reads its ring and never waits, so silence means it hangs.
    pub idle_timeout: Option<Duration>,
}

pub(super) async fn run<M: Merge>(call: Call<M>, tx: mpsc::Sender<Upstream<M>>) {
    let Call {
        name,
        id,
        channel,
        request,
        answer_timeout,
        idle_timeout,
    } = call;
    let fail = |status: Status| Upstream::Failed(name.clone(), id, status);
    let mut stream = match tokio::time::timeout(answer_timeout, M::call(channel, request)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(status)) => {
            let _ = tx.send(fail(status)).await;
            return;
        }
        Err(_) => {
            let status = Status::unavailable(format!("no response within {answer_timeout:?}"));
            let _ = tx.send(fail(status)).await;
            return;
        }
    };
    let mut last_batch_len = 0;
    loop {
        let first = match idle_timeout {
            None => stream.next().await,
            Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let status = Status::unavailable(format!("peer sent nothing for {limit:?}"));
                    let _ = tx.send(fail(status)).await;
                    return;
                }
            },
        };
        let mut batch = Batch::starting_with(first, last_batch_len);
        batch.fill(&mut stream).await;
        let Batch { items, end } = batch;
        last_batch_len = items.len();
        if !items.is_empty() && tx.send(Upstream::Items(name.clone(), id, items)).await.is_err() {
            return;
        }
        match end {
            None => {}
            Some(End::Finished) => {
                let _ = tx.send(Upstream::Ended(name.clone(), id)).await;
                return;
            }
            Some(End::Failed(status)) => {
                let _ = tx.send(fail(status)).await;
                return;
            }
        }
    }
}
