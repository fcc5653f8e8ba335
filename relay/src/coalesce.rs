//! Fewer, larger HTTP/2 DATA frames on agent connections.
//!
//! Hubble's Go agents write every `GetFlowsResponse` as its own DATA frame, and h2
//! does its per-frame bookkeeping (stream store lock, flow-control counters, a
//! wakeup of the stream's reader) for each one: on such feeds that was most of the
//! relay's user-space cost per flow. HTTP/2 gives DATA frame boundaries no meaning,
//! so this reader sits between the socket (or TLS) and h2 and joins runs of
//! unpadded DATA frames of one stream that arrived in the same read into one frame.
//! The payload bytes, and so flow-control accounting, stay exactly as sent; every
//! other frame passes unchanged and in order. Nothing waits for more input: a read
//! hands h2 whatever complete frames it found.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const HEADER: usize = 9;
const DATA: u8 = 0x0;
const END_STREAM: u8 = 0x1;
const PADDED: u8 = 0x8;
/// DATA frames of this size or more are not joined (Sightline agents send 60 KiB).
const LARGE_FRAME: usize = 16 * 1024;
/// The read buffer starts at this size, doubles while reads fill it, up to
/// [`MAX_READ`] (one batch of the socket's low-water mark), and halves again while
/// reads use less than a quarter of it: a quiet agent's connection holds 16 KiB,
/// a busy one reads its batch at once.
const FIRST_READ: usize = 16 * 1024;
const MAX_READ: usize = crate::low_water::BATCH;

/// An HTTP/2 client connection's byte stream with runs of DATA frames joined.
///
/// One buffer holds both sides: joining only drops frame headers, so the frames
/// for h2 (`[handed..composed)`) are rewritten in place ahead of the bytes not yet
/// looked at (`[parsed..filled)`).
pub(crate) struct Coalescing<T> {
    inner: T,
    buffer: Vec<u8>,
    handed: usize,
    composed: usize,
    parsed: usize,
    filled: usize,
    /// How much the next read may ask for.
    read_size: usize,
    /// Joined frames never exceed this, the largest frame h2 accepts from the peer.
    max_frame: usize,
    /// Payload bytes of a large DATA frame still to pass on as they arrive.
    streaming: usize,
    /// A frame announced more than `max_frame`: from then on bytes pass untouched,
    /// so h2 sees the peer's error as sent and reports it.
    raw: bool,
    eof: bool,
    /// A read error that came after bytes h2 has not seen yet.
    failed: Option<io::Error>,
}

/// A run of DATA frames being joined: where its header goes.
struct Run {
    header_at: usize,
    stream: u32,
    len: usize,
    ended: bool,
}

impl<T> Coalescing<T> {
    /// Wraps `inner`, joining DATA frames up to `max_frame` bytes (the relay's
    /// advertised SETTINGS_MAX_FRAME_SIZE).
    pub(crate) fn new(inner: T, max_frame: u32) -> Self {
        Self {
            inner,
            buffer: Vec::new(),
            handed: 0,
            composed: 0,
            parsed: 0,
            filled: 0,
            read_size: FIRST_READ,
            max_frame: usize::try_from(max_frame).unwrap_or(usize::MAX),
            streaming: 0,
            raw: false,
            eof: false,
            failed: None,
        }
    }

    /// Rewrites every complete frame after `composed`, joining DATA runs; a large
    /// DATA frame is passed on as its bytes arrive.
    fn compose(&mut self) {
        let mut run: Option<Run> = None;
        while !self.raw {
            if self.streaming > 0 {
                let take = self.streaming.min(self.filled - self.parsed);
                if take == 0 {
                    break;
                }
                self.shift(self.parsed..self.parsed + take);
                self.streaming -= take;
                continue;
            }
            if self.filled - self.parsed < HEADER {
                break;
            }
            let header = &self.buffer[self.parsed..self.parsed + HEADER];
            let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let (kind, flags) = (header[3], header[4]);
            let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            if len > self.max_frame {
                self.raw = true;
                break;
            }
            if kind == DATA && len >= LARGE_FRAME {
                // Already as large as joining would make it (a Sightline agent's
                // batch): hand it on as it comes instead of gathering it whole.
                self.close(run.take());
                self.shift(self.parsed..self.parsed + HEADER);
                self.streaming = len;
                continue;
            }
            let end = self.parsed + HEADER + len;
            if end > self.filled {
                break;
            }
            if kind == DATA && flags & PADDED == 0 && stream != 0 {
                let current = match run.as_mut() {
                    Some(r) if r.stream == stream && !r.ended && r.len + len <= self.max_frame => r,
                    _ => {
                        self.close(run.take());
                        let opened = run.insert(Run {
                            header_at: self.composed,
                            stream,
                            len: 0,
                            ended: false,
                        });
                        self.composed += HEADER;
                        opened
                    }
                };
                current.len += len;
                current.ended = flags & END_STREAM != 0;
                self.parsed += HEADER;
                self.shift(self.parsed..end);
            } else {
                self.close(run.take());
                self.shift(self.parsed..end);
            }
        }
        self.close(run);
        if self.raw {
            self.shift(self.parsed..self.filled);
        }
    }

    /// Moves `bytes` (starting at `parsed`) to the end of what is composed.
    fn shift(&mut self, bytes: std::ops::Range<usize>) {
        let len = bytes.len();
        if bytes.start != self.composed {
            self.buffer.copy_within(bytes, self.composed);
        }
        self.composed += len;
        self.parsed += len;
    }

    fn close(&mut self, run: Option<Run>) {
        let Some(run) = run else { return };
        let len = u32::try_from(run.len).expect("runs stay under max_frame, a 24-bit length");
        let [_, l0, l1, l2] = len.to_be_bytes();
        let [s0, s1, s2, s3] = run.stream.to_be_bytes();
        let flags = if run.ended { END_STREAM } else { 0 };
        self.buffer[run.header_at..run.header_at + HEADER].copy_from_slice(&[l0, l1, l2, DATA, flags, s0, s1, s2, s3]);
    }

    /// Once everything composed is handed over: moves a partial frame to the front
    /// and makes room for one more read after it.
    fn make_room(&mut self) {
        self.buffer.copy_within(self.parsed..self.filled, 0);
        self.filled -= self.parsed;
        (self.handed, self.composed, self.parsed) = (0, 0, 0);
        let wanted = self.filled + self.read_size;
        if self.buffer.len() < wanted {
            self.buffer.resize(wanted, 0);
        } else if self.buffer.len() > 2 * wanted {
            // Grown for a large frame or a busy spell: give the memory back.
            self.buffer.truncate(wanted);
            self.buffer.shrink_to_fit();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.handed < this.composed {
                let take = buf.remaining().min(this.composed - this.handed);
                buf.put_slice(&this.buffer[this.handed..this.handed + take]);
                this.handed += take;
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // A frame cut short by the peer still reaches h2, which names the error.
                if this.parsed < this.filled {
                    this.raw = true;
                    this.compose();
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            this.compose();
            if this.handed < this.composed {
                continue;
            }
            if let Some(error) = this.failed.take() {
                return Poll::Ready(Err(error));
            }
            this.make_room();
            if let Some(early) = this.fill(cx) {
                return early;
            }
        }
    }
}

impl<T: AsyncRead + Unpin> Coalescing<T> {
    /// Reads until `inner` has nothing more ready or the buffer is full, so a TLS
    /// stream (which hands over a few records per read) still yields whole runs.
    /// `Some` when the caller must return: nothing arrived yet, or an error.
    fn fill(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        let started = self.filled;
        while self.filled < self.buffer.len() {
            let mut read = ReadBuf::new(&mut self.buffer[self.filled..]);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {}
                Poll::Pending if self.filled > started => break,
                Poll::Pending => return Some(Poll::Pending),
                // Bytes read before it go to h2 first; the error comes next.
                Poll::Ready(Err(e)) if self.filled > started => {
                    self.failed = Some(e);
                    break;
                }
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
            }
            let got = read.filled().len();
            if got == 0 {
                self.eof = true;
                break;
            }
            self.filled += got;
        }
        let got = self.filled - started;
        if self.filled == self.buffer.len() && self.read_size < MAX_READ {
            self.read_size *= 2;
        } else if got < self.read_size / 4 && self.read_size > FIRST_READ {
            self.read_size /= 2;
        }
        None
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
