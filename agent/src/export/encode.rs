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
    // Most lines have none: copy those whole.
    if !json.iter().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        out.extend_from_slice(&json);
    } else {
        for byte in json {
            match byte {
                b'<' => out.extend_from_slice(b"\\u003c"),
                b'>' => out.extend_from_slice(b"\\u003e"),
                b'&' => out.extend_from_slice(b"\\u0026"),
                other => out.push(other),
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sightline_proto::flow::Flow;

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
        let mut out = Vec::new();
        write_line(&Event::flow(flow), "ignored", None, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with("}\n"), "{line}");
        assert!(line.contains(r#""Summary":"a \u003cb\u003e \u0026 c""#), "{line}");
        assert!(line.contains(r#""node_name":"node-1""#), "{line}");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["flow"]["Summary"], "a <b> & c");
    }
}
