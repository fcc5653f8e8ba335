//! What a ring slot holds: an event plus, for flows, its `GetFlowsResponse` wire
//! form, encoded by the first client that sends it and shared by all later ones.

use std::ops::Deref;
use std::sync::OnceLock;

use prost::bytes::{Bytes, BytesMut};
use sightline_proto::fields::get_flows_response as response;
use sightline_proto::wire::Writer;

use crate::event::Event;

/// One ring slot: the event and, once a client has sent it unmasked, the flow's
/// encoded `GetFlowsResponse`, which later clients copy instead of re-encoding.
#[derive(Debug)]
pub struct Entry {
    event: Event,
    response: OnceLock<Bytes>,
}

/// Where a stream puts the encodings it caches in ring entries: consecutive slices
/// of shared chunks. A first read used to allocate one exactly sized buffer per
/// flow; at a few hundred thousand flows that was glibc's slow path (no free block
/// of the size at hand) and cost as much as the encoding itself. Slices of one
/// chunk belong to flows this stream encoded one after another, which the ring
/// overwrites in the same order, so a chunk is freed soon after its flows are.
#[derive(Debug, Default)]
pub struct EncodeArena {
    chunk: BytesMut,
    next_chunk_size: usize,
    /// Size of the last encoding, to guess the next one's.
    last_len: usize,
}

impl EncodeArena {
    /// Chunks start small so an idle follower holds little and double up to this.
    const FIRST_CHUNK: usize = 4 * 1024;
    const LARGEST_CHUNK: usize = 64 * 1024;

    /// A chunk with room for about `len` more bytes. An encoding may still run
    /// past the end: `BytesMut` then moves the unfinished part to a new buffer and
    /// the slices already taken keep the old one.
    fn room_for(&mut self, len: usize) -> &mut BytesMut {
        if self.chunk.capacity() - self.chunk.len() < len {
            let size = self.next_chunk_size.clamp(Self::FIRST_CHUNK, Self::LARGEST_CHUNK);
            self.next_chunk_size = size * 2;
            self.chunk = BytesMut::with_capacity(size.max(len));
        }
        &mut self.chunk
    }

    /// The bytes written since the last call, as their own `Bytes`.
    fn take(&mut self) -> Bytes {
        let bytes = self.chunk.split().freeze();
        self.last_len = bytes.len();
        bytes
    }
}

impl Entry {
    /// A slot for `event` with nothing encoded yet.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            response: OnceLock::new(),
        }
    }

    /// The event as the pipeline produced it; filters and masked responses read this.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The encoded `GetFlowsResponse{flow, node_name, time}` of an unmasked flow,
    /// encoded into `arena` by the first caller.
    pub fn flow_response(&self, arena: &mut EncodeArena) -> Option<&Bytes> {
        let Event::Flow(flow) = &self.event else { return None };
        Some(self.response.get_or_init(|| {
            {
                let mut w = Writer::new(arena.room_for(2 * arena.last_len + 256));
                w.large_message(response::FLOW, |w| flow.write_flow_body(w));
                w.string(response::NODE_NAME, flow.node_name());
                if let Some(time) = &flow.time {
                    w.timestamp(response::TIME, time);
                }
            }
            arena.take()
        }))
    }
}

impl Deref for Entry {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

impl From<Event> for Entry {
    fn from(event: Event) -> Self {
        Self::new(event)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use prost::Message;
    use sightline_proto::Timestamp;
    use sightline_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};

    use super::*;

    #[test]
    fn flow_response_is_a_regular_get_flows_response() {
        let flow = crate::synthetic::flow(3, "node-9", Timestamp { seconds: 5, nanos: 6 });
        let entry = Entry::new(Event::flow(flow.clone()));
        let decoded =
            GetFlowsResponse::decode(entry.flow_response(&mut EncodeArena::default()).unwrap().clone()).unwrap();
        assert_eq!(
            decoded,
            GetFlowsResponse {
                node_name: "node-9".into(),
                time: flow.time,
                response_types: Some(ResponseTypes::Flow(flow))
            }
        );
        let lost = Entry::new(Event::Lost {
            time: Timestamp::now(),
            event: Default::default(),
        });
        assert!(lost.flow_response(&mut EncodeArena::default()).is_none());
    }

    fn response_of(entry: &Entry) -> GetFlowsResponse {
        let Event::Flow(flow) = entry.event() else {
            unreachable!()
        };
        GetFlowsResponse {
            node_name: flow.node_name().to_owned(),
            time: flow.time,
            response_types: Some(ResponseTypes::Flow(flow.to_flow())),
        }
    }

    /// Flows encoded one after another share chunks, across chunk boundaries and
    /// with flows bigger than a chunk, and each still decodes to itself alone.
    #[test]
    fn flows_encoded_through_one_arena_stay_separate() {
        let mut arena = EncodeArena::default();
        let mut entries: Vec<Entry> = (0..600)
            .map(|i| {
                Entry::new(Event::Flow(Box::new(crate::synthetic::record(
                    i,
                    "node-1",
                    Timestamp::now(),
                ))))
            })
            .collect();
        let mut huge = crate::synthetic::flow(7, "node-1", Timestamp::now());
        huge.source_names = vec!["x".repeat(100 * 1024)];
        entries.insert(300, Entry::new(Event::flow(huge)));
        let encoded: Vec<Bytes> = entries
            .iter()
            .map(|e| e.flow_response(&mut arena).unwrap().clone())
            .collect();
        drop(arena);
        for (entry, bytes) in entries.iter().zip(&encoded) {
            assert_eq!(GetFlowsResponse::decode(bytes.clone()).unwrap(), response_of(entry));
        }
        assert!(encoded[300].len() > 100 * 1024);
    }

    #[test]
    fn a_cached_encoding_is_reused_by_later_readers() {
        let entry = Entry::new(Event::Flow(Box::new(crate::synthetic::record(
            1,
            "node-1",
            Timestamp::now(),
        ))));
        let first = entry.flow_response(&mut EncodeArena::default()).unwrap().clone();
        let mut other = EncodeArena::default();
        let again = entry.flow_response(&mut other).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "same bytes, not a second encoding");
        assert_eq!(other.chunk.capacity(), 0, "the later reader's arena stays empty");
    }
}
