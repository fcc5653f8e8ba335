//! What a ring slot holds: an event plus, for flows, its `GetFlowsResponse` wire
//! form, encoded by the first client that sends it and shared by all later ones.

use std::ops::Deref;
use std::sync::OnceLock;

use prost::bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len, message};

use crate::event::Event;

#[derive(Debug)]
pub struct Entry {
    event: Event,
    response: OnceLock<Bytes>,
}

impl Entry {
    pub fn new(event: Event) -> Self {
        Self {
            event,
            response: OnceLock::new(),
        }
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The encoded `GetFlowsResponse{flow, node_name, time}` of an unmasked flow.
    pub fn flow_response(&self) -> Option<&Bytes> {
        let Event::Flow(flow) = &self.event else { return None };
        Some(self.response.get_or_init(|| {
            // Field numbers of GetFlowsResponse: flow = 1, node_name = 1000, time = 1001.
            let encoding = flow.flow_encoding();
            let node_name = flow.node_name();
            let node_name_len = if node_name.is_empty() {
                0
            } else {
                key_len(1000) + encoded_len_varint(node_name.len() as u64) + node_name.len()
            };
            let time_len = flow.time.as_ref().map_or(0, |time| message::encoded_len(1001, time));
            // Exactly sized: no reallocation while encoding, and `Bytes` takes the
            // vector as it is.
            let mut out = Vec::with_capacity(encoding.field_len(1) + node_name_len + time_len);
            encoding.encode(1, &mut out);
            if !node_name.is_empty() {
                encode_key(1000, WireType::LengthDelimited, &mut out);
                encode_varint(node_name.len() as u64, &mut out);
                out.extend_from_slice(node_name.as_bytes());
            }
            if let Some(time) = &flow.time {
                message::encode(1001, time, &mut out);
            }
            debug_assert_eq!(out.len(), out.capacity());
            Bytes::from(out)
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
        let decoded = GetFlowsResponse::decode(entry.flow_response().unwrap().clone()).unwrap();
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
        assert!(lost.flow_response().is_none());
    }
}
