//! Waking for a batch of bytes, not for every segment, on agent connections.
//!
//! A Go agent writes each response in its own TCP segment, and a relay that keeps
//! up with it woke, read and merged a handful of flows at a time: on a feed of two
//! such agents the wakeups were a third of the relay's CPU. With `SO_RCVLOWAT` the
//! kernel reports the socket readable only once [`BATCH`] bytes are queued (or the
//! peer closed, or the receive window is nearly used up); a timer takes whatever
//! fewer bytes wait after at most [`DELAY`]. A connection found empty then goes back
//! to waking on its first byte, so a quiet agent costs no timer and a trickle waits
//! at most [`DELAY`], far inside the sort buffer's drain timeout (1 s by default).

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// About 340 Hubble-sized responses. The kernel raises the socket's receive buffer
/// to hold this much (autotuning stays on), so a fast agent is not slowed.
pub(crate) const BATCH: usize = 256 * 1024;
/// The longest a response waits in the socket for more to join it.
pub(crate) const DELAY: Duration = Duration::from_millis(4);

/// An agent connection read in batches of [`BATCH`] bytes or every [`DELAY`].
pub(crate) struct LowWater {
    tcp: TcpStream,
    /// The low-water mark is [`BATCH`] (else 1: wake on the first byte).
    batching: bool,
    /// `SO_RCVLOWAT` was refused once: read as a plain socket from then on.
    unsupported: bool,
    timer: Pin<Box<Sleep>>,
    armed: bool,
    /// Reads the timer made, for tests that must see the batching path taken.
    #[cfg(test)]
    timer_reads: usize,
}

impl LowWater {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            batching: false,
            unsupported: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
            #[cfg(test)]
            timer_reads: 0,
        }
    }

    /// Sets the low-water mark to [`BATCH`] or 1; false if the kernel refused.
    #[allow(unsafe_code)]
    fn batch(&mut self, on: bool) -> bool {
        if self.unsupported {
            return false;
        }
        let bytes: libc::c_int = if on { BATCH as libc::c_int } else { 1 };
        // SAFETY: the descriptor is the socket `self.tcp` owns and keeps open for
        // the call; the value is a c_int passed by address with its exact size, as
        // setsockopt(2) reads it, and it is not kept past the call.
        let rc = unsafe {
            libc::setsockopt(
                self.tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&raw const bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "SO_RCVLOWAT refused: reading agent connections as they arrive");
            self.unsupported = true;
            return false;
        }
        self.batching = on;
        true
    }

    /// Below the low-water mark tokio holds the socket unreadable, so read it directly.
    fn read_below_mark(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        #[cfg(test)]
        {
            self.timer_reads += 1;
        }
        match self.read_directly(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
        // Nothing queued: back to waking on the first byte, with no timer.
        if self.batch(false) {
            // A byte that came in before the mark dropped may have raised no
            // wakeup (kernels before 4.18 do not re-check the queue): look once more.
            return match self.read_directly(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
                done => Poll::Ready(done),
            };
        }
        // The kernel kept the high mark: keep the timer going instead.
        self.timer.as_mut().reset(Instant::now() + DELAY);
        self.armed = true;
        match self.timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn read_directly(&self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let socket = socket2::SockRef::from(&self.tcp);
        let got = (&*socket).read(buf.initialize_unfilled())?;
        buf.advance(got);
        Ok(())
    }
}

impl AsyncRead for LowWater {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.armed = false;
                if !this.batching && buf.filled().len() > before {
                    this.batch(true);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending if !this.batching => return Poll::Pending,
            Poll::Pending => {}
        }
        if !this.armed {
            this.timer.as_mut().reset(Instant::now() + DELAY);
            this.armed = true;
        }
        if this.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.armed = false;
        this.read_below_mark(cx, buf)
    }
}

impl AsyncWrite for LowWater {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
