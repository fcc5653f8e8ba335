//! One event as Hubble's exporter writes it: an `ExportEvent` in protojson with
//! proto field names, in protojson's key order (the `response_types` oneof is
//! declared first, so `{"flow":…,"node_name":…,"time":…}`), HTML characters
//! escaped as Go's `json.Encoder` does, and a newline.
//!
//! Flows take the direct writer ([`flow_json`]); other events
//! and flows it cannot print take the generated serializer.

use prost::bytes::BytesMut;
use serde::Serialize;
use sightline_proto::Timestamp;
use sightline_proto::wire::Writer;

use super::flow_json;
use super::json_text;
use crate::event::Event;
use crate::flow_record::FlowRecord;
use crate::observer::fieldmask::FlowMask;

/// Turns events into lines; holds what the writer reuses from line to line.
#[derive(Debug, Default)]
pub struct LineEncoder {
    node_name: String,
    mask: Option<FlowMask>,
    scratch: String,
    encoded: BytesMut,
}

impl LineEncoder {
    /// `node_name` is written for events that are not flows (flows carry their own).
    pub fn new(node_name: String, mask: Option<FlowMask>) -> Self {
        Self {
            node_name,
            mask: mask.filter(|mask| !mask.is_empty()),
            scratch: String::new(),
            encoded: BytesMut::new(),
        }
    }

    /// Appends the line for `event` to `out`; an event that does not serialise is
    /// logged and skipped.
    pub fn write(&mut self, event: &Event, out: &mut Vec<u8>) {
        let Event::Flow(record) = event else {
            write_line_generic(event, &self.node_name, None, out);
            return;
        };
        let written = match &self.mask {
            None => flow_json::write_flow_line(record, &mut self.scratch, out),
            Some(mask) => {
                // Masked from the record's wire form: no materialised flow, and only
                // the kept fields are decoded.
                self.encoded.clear();
                record.write_flow_body(&mut Writer::new(&mut self.encoded));
                let masked = FlowRecord::new(mask.apply_encoded(&self.encoded));
                flow_json::write_flow_line(&masked, &mut self.scratch, out)
            }
        };
        if written.is_err() {
            write_line_generic(event, &self.node_name, self.mask.as_ref(), out);
        }
    }
}

impl LineEncoder {
    /// Writes an aggregated flow: the field mask does not apply (as in Hubble,
    /// the aggregate fields decide what the flow holds).
    pub fn write_aggregated(&mut self, record: &FlowRecord, out: &mut Vec<u8>) {
        if flow_json::write_flow_line(record, &mut self.scratch, out).is_err() {
            write_line_generic(&Event::Flow(Box::new(record.clone())), &self.node_name, None, out);
        }
    }
}

/// The reference path: every event through the generated serde code. Flows take
/// `node_name` and `time` from the (masked) flow; other events from `node_name`
/// and their own time.
pub fn write_line_generic(event: &Event, node_name: &str, mask: Option<&FlowMask>, out: &mut Vec<u8>) {
    let start = out.len();
    let written = match event {
        Event::Flow(record) => {
            let flow = record.to_flow();
            let flow = match mask {
                Some(mask) => mask.apply(&flow),
                None => flow,
            };
            envelope(out, "flow", &flow, &flow.node_name, flow.time)
        }
        Event::Lost { time, event } => envelope(out, "lost_events", &**event, node_name, Some(*time)),
        Event::Agent { time, event } => envelope(out, "agent_event", &**event, node_name, Some(*time)),
        Event::Debug { time, event } => envelope(out, "debug_event", &**event, node_name, Some(*time)),
    };
    if let Err(err) = written {
        out.truncate(start);
        tracing::warn!(%err, "event not exported: it does not serialise");
    }
}

fn envelope<T: Serialize>(
    out: &mut Vec<u8>,
    kind: &str,
    body: &T,
    node_name: &str,
    time: Option<Timestamp>,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\":");
    serde_json::to_writer(&mut *out, body)?;
    if !node_name.is_empty() {
        out.extend_from_slice(b",\"node_name\":");
        serde_json::to_writer(&mut *out, node_name)?;
    }
    if let Some(time) = time {
        out.extend_from_slice(b",\"time\":");
        serde_json::to_writer(&mut *out, &time)?;
    }
    out.push(b'}');
    json_text::escape_html_from(out, start);
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sightline_proto::flow::{Flow, LostEvent, LostEventSource};

    use super::*;

    // Summary is deprecated, but a free-text field is where such characters occur.
    #[allow(deprecated)]
    #[test]
    fn html_characters_are_escaped_as_go_does_and_the_line_ends() {
        let flow = Flow {
            node_name: "node-1".into(),
            summary: "a <b> & c".into(),
            ..Flow::default()
        };
        for line in [
            {
                let mut out = Vec::new();
                LineEncoder::new("ignored".into(), None).write(&Event::flow(flow.clone()), &mut out);
                out
            },
            {
                let mut out = Vec::new();
                write_line_generic(&Event::flow(flow.clone()), "ignored", None, &mut out);
                out
            },
        ] {
            let line = String::from_utf8(line).unwrap();
            assert!(line.ends_with("}\n"), "{line}");
            assert!(line.contains(r#""Summary":"a \u003cb\u003e \u0026 c""#), "{line}");
            assert!(line.starts_with(r#"{"flow":{"#), "{line}");
            assert!(line.ends_with("},\"node_name\":\"node-1\"}\n"), "{line}");
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(parsed["flow"]["Summary"], "a <b> & c");
        }
    }

    #[test]
    fn other_events_carry_the_agents_node_name_and_their_time_in_hubbles_key_order() {
        let event = Event::Lost {
            time: Timestamp {
                seconds: 1_700_000_000,
                nanos: 5_000_000,
            },
            event: Box::new(LostEvent {
                source: LostEventSource::PerfEventRingBuffer as i32,
                num_events_lost: 3,
                ..LostEvent::default()
            }),
        };
        let mut out = Vec::new();
        LineEncoder::new("node-7".into(), None).write(&event, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"lost_events\":{\"source\":\"PERF_EVENT_RING_BUFFER\",\"num_events_lost\":\"3\"},\"node_name\":\"node-7\",\"time\":\"2023-11-14T22:13:20.005Z\"}\n"
        );
    }
}
