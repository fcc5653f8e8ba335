use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::{BATCH, LowWater};

/// A connected pair: the agent's end and the relay's end read through `LowWater`.
async fn pair() -> (TcpStream, LowWater) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dial = TcpStream::connect(listener.local_addr().expect("address"));
    let (dialled, accepted) = tokio::join!(dial, listener.accept());
    (accepted.expect("accept").0, LowWater::new(dialled.expect("connect")))
}

/// Reads exactly `len` bytes, failing after 5 s (a stall under the low-water mark).
async fn read_exactly(reader: &mut LowWater, len: usize) -> Vec<u8> {
    let mut got = vec![0; len];
    tokio::time::timeout(Duration::from_secs(5), reader.read_exact(&mut got))
        .await
        .expect("bytes below the low-water mark were left waiting")
        .expect("read");
    got
}

/// Reads to the end of the stream, failing after `within` (a stall under the mark).
async fn read_to_end(reader: &mut LowWater, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(within, reader.read_to_end(&mut got))
        .await
        .expect("the stream and its end arrived")
        .expect("read");
    got
}

/// Reads what the first write sent; a read shorter than its buffer leaves the
/// socket marked empty, so the next bytes must wake the reader on their own.
async fn read_first(agent: &mut TcpStream, relay: &mut LowWater) {
    agent.write_all(b"first").await.expect("write");
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_secs(5), relay.read(&mut buf))
        .await
        .expect("the first bytes wake the reader")
        .expect("read");
    assert_eq!(&buf[..got], b"first");
    assert!(
        relay.batching,
        "the kernel took the low-water mark after the first bytes"
    );
}

#[tokio::test]
async fn a_response_smaller_than_the_batch_is_not_left_waiting() {
    let (mut agent, mut relay) = pair().await;
    read_first(&mut agent, &mut relay).await;
    // The connection now waits for a batch; one ~760-byte response must still come.
    let response = vec![7u8; 760];
    agent.write_all(&response).await.expect("write");
    assert_eq!(read_exactly(&mut relay, response.len()).await, response);
    assert!(
        relay.timer_reads >= 1,
        "the response came below the mark, so the timer read it"
    );
}

#[tokio::test]
async fn a_quiet_connection_sleeps_until_its_next_byte() {
    let (mut agent, mut relay) = pair().await;
    read_first(&mut agent, &mut relay).await;
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        agent.write_all(b"later").await.expect("write");
        agent
    });
    let mut polls = 0;
    let mut byte = [0u8; 1];
    let woken = poll_fn(|cx| {
        polls += 1;
        let mut read = ReadBuf::new(&mut byte);
        Pin::new(&mut relay)
            .poll_read(cx, &mut read)
            .map_ok(|()| read.filled().len())
    });
    let got = tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("the first byte after a quiet spell wakes the reader")
        .expect("read");
    assert_eq!((got, byte[0]), (1, b'l'));
    // Finding the socket empty, finding it still empty when the timer fires, and
    // the byte: a timer left running would poll ~75 times in 300 ms.
    assert!(polls <= 5, "a quiet connection was polled {polls} times in 300 ms");
    assert!(
        relay.timer_reads >= 1,
        "the timer looked once before the connection went quiet"
    );
    drop(writer.await.expect("writer"));
}

#[tokio::test]
async fn a_stream_of_many_batches_arrives_whole_and_in_order() {
    let (mut agent, mut relay) = pair().await;
    let sent: Vec<u8> = (0..16 * BATCH + 1_234).map(|i| (i % 251) as u8).collect();
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            // Response-sized writes, as a Go agent makes them, then close.
            for chunk in sent.chunks(761) {
                agent.write_all(chunk).await.expect("write");
            }
            agent.shutdown().await.expect("shutdown");
        })
    };
    let received = read_to_end(&mut relay, Duration::from_secs(30)).await;
    writer.await.expect("writer");
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "bytes arrived changed or out of order");
}

#[tokio::test]
async fn the_end_of_the_stream_is_seen_below_the_mark() {
    let (mut agent, mut relay) = pair().await;
    read_first(&mut agent, &mut relay).await;
    agent.write_all(b"tail").await.expect("write");
    agent.shutdown().await.expect("shutdown");
    assert_eq!(read_to_end(&mut relay, Duration::from_secs(5)).await, b"tail");
}
