use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::{Coalescing, DATA, END_STREAM, HEADER, PADDED};

const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const MAX_FRAME: u32 = 256 * 1024;

/// A peer whose bytes arrive in the given pieces, then EOF; every other read finds
/// nothing ready yet, as a socket between segments does.
struct Pieces(VecDeque<Vec<u8>>, bool);

impl Pieces {
    fn new(pieces: Vec<Vec<u8>>) -> Self {
        Self(pieces.into(), false)
    }
}

impl AsyncRead for Pieces {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.1 = !self.1;
        if self.1 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(mut piece) = self.0.pop_front() {
            let take = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..take]);
            if take < piece.len() {
                self.0.push_front(piece.split_off(take));
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Frame {
    Frame {
        kind,
        flags,
        stream,
        payload: payload.to_vec(),
    }
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let len = u32::try_from(f.payload.len()).expect("test frame").to_be_bytes();
        out.extend_from_slice(&len[1..]);
        out.extend_from_slice(&[f.kind, f.flags]);
        out.extend_from_slice(&f.stream.to_be_bytes());
        out.extend_from_slice(&f.payload);
    }
    out
}

fn decode(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        frames.push(frame(bytes[3], bytes[4], stream, &bytes[HEADER..HEADER + len]));
        bytes = &bytes[HEADER + len..];
    }
    frames
}

/// Everything h2 would read, through a reader that takes `h2_read` bytes at a time.
async fn through(pieces: Vec<Vec<u8>>, h2_read: usize) -> Vec<u8> {
    let mut reader = Coalescing::new(Pieces::new(pieces), MAX_FRAME);
    let mut out = Vec::new();
    let mut buf = vec![0; h2_read];
    loop {
        let n = reader.read(&mut buf).await.expect("in-memory reads do not fail");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Splits `bytes` at pseudo-random points (xorshift from `seed`), pieces of 1..=`max`.
fn split(bytes: &[u8], seed: u64, max: usize) -> Vec<Vec<u8>> {
    let mut state = seed | 1;
    let mut pieces = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let take = (usize::try_from(state % max as u64).expect("small") + 1).min(rest.len());
        pieces.push(rest[..take].to_vec());
        rest = &rest[take..];
    }
    pieces
}

/// What the peer sent as h2 would use it: the other frames in order, and each
/// stream's data bytes, data length and end marks at the points they fall.
fn meaning(frames: &[Frame]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out: Vec<(u8, u8, u32, Vec<u8>)> = Vec::new();
    for f in frames {
        if f.kind == DATA && f.flags & PADDED == 0 {
            match out.last_mut() {
                Some(last) if last.0 == DATA && last.2 == f.stream && last.1 & END_STREAM == 0 => {
                    last.3.extend_from_slice(&f.payload);
                    last.1 = f.flags & END_STREAM;
                }
                _ => out.push((DATA, f.flags & END_STREAM, f.stream, f.payload.clone())),
            }
        } else {
            out.push((f.kind, f.flags, f.stream, f.payload.clone()));
        }
    }
    out
}

/// A Go agent's GetFlows answer: settings, headers, one DATA frame per response of
/// ~760 bytes, trailers.
fn go_framed_answer(responses: usize) -> Vec<Frame> {
    let mut frames = vec![
        frame(SETTINGS, 0, 0, &[0, 4, 0, 0x40, 0, 0]),
        frame(HEADERS, 0x4, 1, b"h"),
    ];
    for k in 0..responses {
        let payload: Vec<u8> = (0..700 + k % 120).map(|i| (i + k) as u8).collect();
        frames.push(frame(DATA, 0, 1, &payload));
    }
    frames.push(frame(HEADERS, 0x4 | END_STREAM, 1, b"trailers"));
    frames
}

#[tokio::test]
async fn one_frame_per_response_reaches_h2_as_few_frames_with_the_same_bytes() {
    let sent = go_framed_answer(200);
    let bytes = encode(&sent);
    let received = decode(&through(vec![bytes.clone()], 8 * 1024).await);

    assert_eq!(meaning(&received), meaning(&sent));
    let data_frames = received.iter().filter(|f| f.kind == DATA).count();
    assert!(
        data_frames <= 200 / 20,
        "200 DATA frames ({} bytes) reached h2 as {data_frames}",
        bytes.len()
    );
    let data_len = |frames: &[Frame]| {
        frames
            .iter()
            .filter(|f| f.kind == DATA)
            .map(|f| f.payload.len())
            .sum::<usize>()
    };
    assert_eq!(
        data_len(&received),
        data_len(&sent),
        "flow control counts the same bytes"
    );
}

#[tokio::test]
async fn any_split_of_the_input_and_any_h2_read_size_keep_the_meaning() {
    let sent = go_framed_answer(60);
    let bytes = encode(&sent);
    for seed in 1..40u64 {
        let max_piece = [1, 7, 100, 900, 5_000, 70_000][seed as usize % 6];
        let h2_read = [1, 9, 4096, 8192][seed as usize % 4];
        let received = decode(&through(split(&bytes, seed, max_piece), h2_read).await);
        assert_eq!(
            meaning(&received),
            meaning(&sent),
            "seed {seed}, pieces ≤ {max_piece}, reads of {h2_read}"
        );
        assert!(received.iter().all(|f| f.payload.len() <= MAX_FRAME as usize));
    }
}

#[tokio::test]
async fn streams_stay_apart_and_end_stream_closes_a_run() {
    let sent = vec![
        frame(DATA, 0, 1, b"a1"),
        frame(DATA, 0, 3, b"b1"),
        frame(DATA, 0, 3, b"b2"),
        frame(DATA, END_STREAM, 3, b"b3"),
        frame(DATA, 0, 1, b"a2"),
        frame(DATA, END_STREAM, 1, b"a3"),
        frame(DATA, 0, 5, b"c1"),
    ];
    let received = decode(&through(vec![encode(&sent)], 1024).await);
    assert_eq!(
        received,
        vec![
            frame(DATA, 0, 1, b"a1"),
            frame(DATA, END_STREAM, 3, b"b1b2b3"),
            frame(DATA, END_STREAM, 1, b"a2a3"),
            frame(DATA, 0, 5, b"c1"),
        ]
    );
}

#[tokio::test]
async fn padded_frames_and_other_frames_pass_unchanged() {
    // Padding counts against flow control, so a padded frame keeps its shape.
    let padded = frame(DATA, PADDED, 1, &[2, b'x', b'y', 0, 0]);
    let sent = vec![
        frame(DATA, 0, 1, b"one"),
        padded.clone(),
        frame(DATA, 0, 1, b"two"),
        frame(0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]),
        frame(DATA, 0, 1, b"three"),
    ];
    let received = decode(&through(vec![encode(&sent)], 1024).await);
    assert_eq!(received, sent);
}

#[tokio::test]
async fn an_oversized_frame_and_everything_after_it_reach_h2_as_sent() {
    let mut bytes = encode(&[frame(DATA, 0, 1, b"before")]);
    let oversized_header = [0x04, 0x00, 0x01, DATA, 0, 0, 0, 0, 1];
    bytes.extend_from_slice(&oversized_header);
    bytes.extend_from_slice(&encode(&[frame(DATA, 0, 1, b"x"), frame(DATA, 0, 1, b"y")]));
    assert_eq!(
        through(vec![bytes.clone()], 1024).await,
        bytes,
        "h2 sees the frame size error as sent"
    );
}

#[tokio::test]
async fn a_frame_cut_short_by_the_peer_reaches_h2_before_the_end() {
    let whole = encode(&[frame(DATA, 0, 1, b"complete"), frame(DATA, 0, 1, b"cut short")]);
    let cut = whole[..whole.len() - 3].to_vec();
    assert_eq!(through(split(&cut, 7, 5), 64).await, cut);
}

#[tokio::test]
async fn a_frame_larger_than_one_read_passes_in_pieces() {
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let sent = vec![
        frame(DATA, 0, 1, b"small"),
        frame(DATA, 0, 1, &big),
        frame(DATA, 0, 1, b"tail"),
    ];
    let received = decode(&through(split(&encode(&sent), 3, 30_000), 8192).await);
    assert_eq!(meaning(&received), meaning(&sent));
}

#[tokio::test]
async fn a_busy_spell_grows_the_read_buffer_and_a_quiet_one_gives_it_back() {
    let busy = encode(&go_framed_answer(2_000));
    let mut pieces = vec![busy];
    pieces.extend((0..40).map(|k| encode(&[frame(DATA, 0, 1, &[k; 100])])));
    let mut reader = Coalescing::new(Pieces::new(pieces), MAX_FRAME);
    let (mut largest, mut buf) = (0, vec![0; 300 * 1024]);
    while reader.read(&mut buf).await.expect("in-memory reads do not fail") > 0 {
        largest = largest.max(reader.buffer.len());
    }
    assert!(largest >= super::MAX_READ, "busy reads used at most {largest} bytes");
    assert!(
        reader.buffer.len() <= 2 * super::FIRST_READ,
        "{} bytes still held after 40 small reads",
        reader.buffer.len()
    );
}

#[tokio::test]
async fn small_frames_join_around_large_ones_passed_as_they_come() {
    let mut sent = vec![frame(HEADERS, 0x4, 1, b"h")];
    for k in 0..120usize {
        let len = match k % 7 {
            3 => 40_000,
            5 => super::LARGE_FRAME - 1 + k % 2,
            _ => 700 + k,
        };
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + k) as u8).collect();
        sent.push(frame(DATA, 0, 1, &payload));
    }
    sent.push(frame(DATA, END_STREAM, 1, b"last"));
    let bytes = encode(&sent);
    for seed in 1..30u64 {
        let max_piece = [1, 500, 9_000, 70_000, 300_000][seed as usize % 5];
        let received = decode(&through(split(&bytes, seed, max_piece), [9, 8192, 70_000][seed as usize % 3]).await);
        assert_eq!(meaning(&received), meaning(&sent), "seed {seed}, pieces ≤ {max_piece}");
        for large in sent.iter().filter(|f| f.payload.len() >= super::LARGE_FRAME) {
            assert!(
                received.contains(large),
                "seed {seed}: a large frame did not reach h2 as sent"
            );
        }
    }
}

#[tokio::test]
async fn a_joined_frame_never_exceeds_the_largest_frame_h2_accepts() {
    let sent: Vec<Frame> = (0..60u8).map(|k| frame(DATA, 0, 1, &[k; 700])).collect();
    let mut reader = Coalescing::new(Pieces::new(vec![encode(&sent)]), 4096);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.expect("in-memory reads do not fail");
    let received = decode(&out);
    assert_eq!(meaning(&received), meaning(&sent));
    assert!(
        received.len() > 1,
        "42 000 bytes under a 4096-byte limit need several frames"
    );
    assert!(
        received.iter().all(|f| f.payload.len() <= 4096),
        "a frame over the limit h2 set"
    );
}

#[tokio::test]
async fn bytes_read_before_an_error_reach_h2_before_it() {
    struct FailsAfter(Option<Vec<u8>>);
    impl AsyncRead for FailsAfter {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            match self.0.take() {
                Some(bytes) => buf.put_slice(&bytes),
                None => return Poll::Ready(Err(io::Error::from(io::ErrorKind::ConnectionReset))),
            }
            Poll::Ready(Ok(()))
        }
    }
    let sent = vec![frame(DATA, 0, 1, b"one"), frame(DATA, 0, 1, b"two")];
    let mut reader = Coalescing::new(FailsAfter(Some(encode(&sent))), MAX_FRAME);
    let mut buf = vec![0; 1024];
    let got = reader.read(&mut buf).await.expect("the bytes come first");
    assert_eq!(meaning(&decode(&buf[..got])), meaning(&sent));
    let error = reader.read(&mut buf).await.expect_err("then the error");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
}
