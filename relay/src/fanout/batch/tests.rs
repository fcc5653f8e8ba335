use futures::StreamExt;
use tonic::Status;

use super::{Batch, End, UPSTREAM_BATCH};
use crate::merge::Responses;

async fn next_batch(stream: &mut Responses<u32>) -> Batch<u32> {
    let first = stream.next().await;
    let mut batch = Batch::starting_with(first, 0);
    batch.fill(stream).await;
    batch
}

fn ready(items: Vec<Result<u32, Status>>) -> Responses<u32> {
    futures::stream::iter(items).boxed()
}

#[tokio::test]
async fn responses_before_a_failure_are_handed_over_with_it() {
    let mut stream = ready(vec![Ok(1), Ok(2), Err(Status::internal("agent broke")), Ok(3)]);
    let batch = next_batch(&mut stream).await;
    assert_eq!(batch.items, [1, 2]);
    match batch.end {
        Some(End::Failed(status)) => assert_eq!(status.message(), "agent broke"),
        _ => panic!("the failure must end the batch"),
    }
}

#[tokio::test]
async fn the_end_of_the_stream_comes_with_the_last_responses() {
    let mut stream = ready(vec![Ok(7)]);
    let batch = next_batch(&mut stream).await;
    assert_eq!(batch.items, [7]);
    assert!(matches!(batch.end, Some(End::Finished)));
}

#[tokio::test]
async fn a_busy_peer_is_handed_over_in_bounded_batches_in_order() {
    let total = 2 * UPSTREAM_BATCH as u32 + 44;
    let mut stream = ready((0..total).map(Ok).collect());
    let mut seen = Vec::new();
    loop {
        let batch = next_batch(&mut stream).await;
        assert!(
            batch.items.len() <= UPSTREAM_BATCH,
            "{} in one batch",
            batch.items.len()
        );
        seen.extend(batch.items);
        if batch.end.is_some() {
            assert!(matches!(batch.end, Some(End::Finished)));
            break;
        }
    }
    assert_eq!(seen, (0..total).collect::<Vec<_>>());
}
