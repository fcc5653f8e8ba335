//! One event as Hubble's exporter writes it: an `ExportEvent` in protojson with
//! proto field names, HTML characters escaped as Go's `json.Encoder` does, and a
//! newline.

use sightline_proto::observer::ExportEvent;
use sightline_proto::observer::export_event::ResponseTypes;

use crate::event::Event;
use crate::observer::fieldmask::FlowMask;

/// Appends the line for `event` to `out`. Flows take `node_name` and `time` from
/// the (masked) flow; other events from `node_name` and their own time.
pub fn write_line(event: &Event, node_name: &str, mask: Option<&FlowMask>, out: &mut Vec<u8>) {
    let export = match event {
        Event::Flow(record) => {
            let flow = record.to_flow();
            let flow = match mask {
                Some(mask) => mask.apply(&flow),
                None => flow,
            };
            ExportEvent {
                node_name: flow.node_name.clone(),
                time: flow.time,
                response_types: Some(ResponseTypes::Flow(flow)),
            }
        }
        Event::Lost { time, event } => ExportEvent {
            node_name: node_name.to_owned(),
            time: Some(*time),
            response_types: Some(ResponseTypes::LostEvents(*event.clone())),
        },
        Event::Agent { time, event } => ExportEvent {
            node_name: node_name.to_owned(),
            time: Some(*time),
            response_types: Some(ResponseTypes::AgentEvent(*event.clone())),
        },
        Event::Debug { time, event } => ExportEvent {
            node_name: node_name.to_owned(),
            time: Some(*time),
            response_types: Some(ResponseTypes::DebugEvent(*event.clone())),
        },
    };
    let json = match serde_json::to_vec(&export) {
        Ok(json) => json,
        Err(err) => {
            tracing::warn!(%err, "event not exported: it does not serialise");
            return;
        }
    };
    // Go's encoder escapes these inside strings; they never occur outside one.
    for byte in json {
        match byte {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            other => out.push(other),
        }
    }
    out.push(b'\n');
}
