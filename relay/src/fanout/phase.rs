//! The merge phase of one fan-out: where responses wait between the peers and the
//! client, decided by the request's window.

use std::collections::HashSet;
use std::time::Duration;

use sightline_proto::Timestamp;
use tokio::time::Instant;

use super::cut::cut;
use super::sink::{ClientGone, ClientSink};
use crate::merge::{Merge, Window};
use crate::sort_buffer::{Release, SortBuffer};

/// Where responses go before they reach the client, by request window.
enum Phase<M> {
    /// Non-follow with `number`: everything is gathered, then the window is cut.
    Collect(Vec<M>),
    /// Follow with `number`: history (older than the request) is gathered until
    /// every peer has moved past it, then its tail is sent and streaming starts.
    Gate {
        history: Vec<M>,
        live: Vec<M>,
        live_peers: HashSet<String>,
        quiet_since: Instant,
    },
    /// Everything else: straight through the sort buffer.
    Stream,
}

pub(super) struct Merging<M: Merge> {
    phase: Phase<M>,
    buffer: SortBuffer<M>,
    window: Window,
    /// When the request came in: older responses are history.
    started: Timestamp,
    drain_timeout: Duration,
}

impl<M: Merge> Merging<M> {
    pub(super) fn new(window: Window, sort_buffer_len: usize, drain_timeout: Duration) -> Self {
        let phase = match window {
            Window {
                follow: false,
                number: 1..,
                ..
            } => Phase::Collect(Vec::new()),
            // With `since`, agents send everything after it and then follow: no cut.
            Window {
                follow: true,
                number: 1..,
                since: false,
                ..
            } => Phase::Gate {
                history: Vec::new(),
                live: Vec::new(),
                live_peers: HashSet::new(),
                quiet_since: Instant::now(),
            },
            _ => Phase::Stream,
        };
        Self {
            phase,
            buffer: SortBuffer::new(sort_buffer_len, drain_timeout),
            window,
            started: Timestamp::now(),
            drain_timeout,
        }
    }

    /// When the merge must act without new input: a drain timeout in the sort
    /// buffer, or history that has been quiet long enough.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Gate { quiet_since, .. } => Some(*quiet_since + self.drain_timeout),
            Phase::Stream => self.buffer.next_deadline(),
            Phase::Collect(_) => None,
        }
    }

    /// The deadline passed.
    pub(super) async fn on_deadline(&mut self, sink: &mut ClientSink<M>) -> Result<(), ClientGone> {
        match &mut self.phase {
            Phase::Stream => {
                for item in self.buffer.drain_expired(Instant::now()) {
                    sink.emit(item, Some(Release::Timeout)).await?;
                }
            }
            Phase::Gate { quiet_since, .. } => {
                // Nothing older arrived for a whole drain timeout: history is complete.
                *quiet_since = Instant::now() - self.drain_timeout;
            }
            Phase::Collect(_) => {}
        }
        Ok(())
    }

    /// Sends `item` (from `peer`, or the relay's own with None) on its way
    /// according to the phase.
    pub(super) async fn route(
        &mut self,
        peer: Option<&str>,
        item: M,
        sink: &mut ClientSink<M>,
    ) -> Result<(), ClientGone> {
        let now = sink.arrival();
        match &mut self.phase {
            Phase::Collect(items) => items.push(item),
            Phase::Gate {
                history,
                live,
                live_peers,
                quiet_since,
            } => {
                if item.time_nanos() <= self.started.as_unix_nanos() && item.counts() {
                    history.push(item);
                    *quiet_since = now;
                } else {
                    if let Some(peer) = peer {
                        live_peers.insert(peer.to_owned());
                    }
                    live.push(item);
                }
            }
            Phase::Stream => {
                if let Some(released) = self.buffer.push(item, now) {
                    sink.emit(released, Some(Release::Full)).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether the history gate may open: every peer still streaming has sent
    /// something live, or history stayed quiet for a drain timeout.
    pub(super) fn gate_ready<'a>(&self, mut streaming: impl Iterator<Item = &'a String>) -> bool {
        let Phase::Gate {
            live_peers,
            quiet_since,
            ..
        } = &self.phase
        else {
            return false;
        };
        streaming.all(|peer| live_peers.contains(peer)) || quiet_since.elapsed() >= self.drain_timeout
    }

    /// Sends the history's window, then streams what arrived live meanwhile.
    pub(super) async fn open_gate(&mut self, sink: &mut ClientSink<M>) -> Result<(), ClientGone> {
        let Phase::Gate { history, live, .. } = std::mem::replace(&mut self.phase, Phase::Stream) else {
            return Ok(());
        };
        sink.stamp_arrival();
        for item in cut(history, self.window.number, false) {
            sink.emit(item, None).await?;
        }
        for item in live {
            self.route(None, item, sink).await?;
        }
        Ok(())
    }

    /// Every peer is done (bounded requests): what is held goes to the client.
    pub(super) async fn finish(&mut self, sink: &mut ClientSink<M>) -> Result<(), ClientGone> {
        let (items, from_buffer) = match std::mem::replace(&mut self.phase, Phase::Stream) {
            Phase::Collect(items) => (cut(items, self.window.number, self.window.keeps_oldest()), false),
            Phase::Gate { history, live, .. } => {
                let mut items = cut(history, self.window.number, false);
                items.extend(live);
                (items, false)
            }
            Phase::Stream => (self.buffer.drain_all(), true),
        };
        let why = from_buffer.then_some(Release::Flush);
        for item in items {
            sink.emit(item, why).await?;
        }
        sink.flush().await
    }
}
