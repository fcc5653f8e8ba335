//! Kafka: length-prefixed messages in both directions. The captured prefix of each
//! request gives its header and topic, the prefix of each response its correlation id and
//! error code; the rest (record batches) is skipped by length, captured or not.
//! Requests and responses pair up by correlation id. After lost framing the parser waits
//! for a segment that starts with a plausible message.

use std::collections::VecDeque;

use sightline_proto::flow::{Kafka, L7FlowType};

use super::kafka_wire::{api_key_name, request_head, response_correlation_id, response_error_code, topic_readable};
use super::stats::FailureReason;
use super::tracker::{Direction, ParseContext, Parsed, StreamParser};
use super::{L7Protocol, L7Record, detect};

const PROTOCOL: L7Protocol = L7Protocol::Kafka;
/// How much of each message is kept for decoding; headers and topic names fit easily.
const PREFIX_LIMIT: usize = 1024;
/// Kafka's default `socket.request.max.bytes` is 100 MiB; larger lengths are not Kafka.
const MAX_MESSAGE: i32 = 100 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct KafkaParser {
    halves: [Framer; 2],
    /// Requests waiting for their response, oldest first.
    pending: VecDeque<PendingRequest>,
}

struct PendingRequest {
    correlation_id: i32,
    api_key: i16,
    api_version: i16,
    topic: String,
    timestamp_ns: u64,
}

#[derive(Default)]
struct Framer {
    /// Length prefix bytes seen so far.
    length: Vec<u8>,
    message: Option<Message>,
    /// Framing was lost; waiting for a segment that starts a message.
    lost: bool,
}

struct Message {
    remaining: u64,
    prefix: Vec<u8>,
    /// The prefix stopped at uncaptured bytes: what follows is not contiguous.
    prefix_closed: bool,
    start_ns: u64,
}

impl StreamParser for KafkaParser {
    fn data(&mut self, cx: &mut ParseContext<'_>, direction: Direction, mut input: &[u8], timestamp_ns: u64) {
        let index = direction as usize;
        if self.halves[index].lost {
            if !self.starts_message(direction, input) {
                return;
            }
            self.halves[index].lost = false;
        }
        while !input.is_empty() {
            let framer = &mut self.halves[index];
            let Some(message) = &mut framer.message else {
                let take = (4 - framer.length.len()).min(input.len());
                framer.length.extend_from_slice(&input[..take]);
                input = &input[take..];
                if framer.length.len() < 4 {
                    return;
                }
                let length =
                    i32::from_be_bytes([framer.length[0], framer.length[1], framer.length[2], framer.length[3]]);
                framer.length.clear();
                if !(0..=MAX_MESSAGE).contains(&length) {
                    cx.fail(PROTOCOL, FailureReason::Malformed);
                    framer.lost = true;
                    return;
                }
                framer.message = Some(Message {
                    remaining: length as u64,
                    prefix: Vec::new(),
                    prefix_closed: false,
                    start_ns: timestamp_ns,
                });
                if length == 0 {
                    self.finish_message(cx, direction);
                }
                continue;
            };
            let take = usize::try_from(message.remaining)
                .unwrap_or(usize::MAX)
                .min(input.len());
            if !message.prefix_closed && message.prefix.len() < PREFIX_LIMIT {
                let keep = take.min(PREFIX_LIMIT - message.prefix.len());
                message.prefix.extend_from_slice(&input[..keep]);
            }
            message.remaining -= take as u64;
            input = &input[take..];
            if message.remaining == 0 {
                self.finish_message(cx, direction);
            }
        }
    }

    fn gap(&mut self, cx: &mut ParseContext<'_>, direction: Direction, len: u32) {
        let framer = &mut self.halves[direction as usize];
        if framer.lost {
            return;
        }
        if let Some(message) = &mut framer.message
            && u64::from(len) <= message.remaining
        {
            message.remaining -= u64::from(len);
            message.prefix_closed = true;
            if message.remaining == 0 {
                self.finish_message(cx, direction);
            }
            return;
        }
        // A length prefix was not seen: message boundaries are unknown from here.
        framer.message = None;
        framer.length.clear();
        framer.lost = true;
        cx.fail(PROTOCOL, FailureReason::GapInHead);
    }

    fn close(&mut self, cx: &mut ParseContext<'_>) {
        for _ in self.pending.drain(..) {
            cx.fail(PROTOCOL, FailureReason::UnansweredRequest);
        }
    }
}

impl KafkaParser {
    /// Whether a segment after lost framing starts a message worth resuming at.
    fn starts_message(&self, direction: Direction, input: &[u8]) -> bool {
        match direction {
            Direction::ToServer => detect(input) == Some(L7Protocol::Kafka),
            Direction::ToClient => input
                .get(4..)
                .and_then(response_correlation_id)
                .is_some_and(|id| self.pending.iter().any(|request| request.correlation_id == id)),
        }
    }

    fn finish_message(&mut self, cx: &mut ParseContext<'_>, direction: Direction) {
        let Some(message) = self.halves[direction as usize].message.take() else {
            return;
        };
        match direction {
            Direction::ToServer => self.on_request(cx, message),
            Direction::ToClient => self.on_response(cx, message),
        }
    }

    fn on_request(&mut self, cx: &mut ParseContext<'_>, message: Message) {
        let Some(head) = request_head(&message.prefix) else {
            cx.fail(
                PROTOCOL,
                if message.prefix_closed {
                    FailureReason::GapInHead
                } else {
                    FailureReason::Malformed
                },
            );
            return;
        };
        if !topic_readable(head.api_key, head.api_version) {
            cx.fail(PROTOCOL, FailureReason::UnsupportedVersion);
        }
        let topic = head.topic.unwrap_or_default();
        let kafka = Kafka {
            error_code: 0,
            api_version: i32::from(head.api_version),
            api_key: api_key_name(head.api_key),
            correlation_id: head.correlation_id,
            topic: topic.clone(),
        };
        let record = L7Record::Kafka(kafka);
        cx.push(Parsed {
            flow_type: L7FlowType::Request,
            latency_ns: 0,
            record,
            timestamp_ns: message.start_ns,
            trace_id: None,
        });
        if self.pending.len() >= cx.settings.max_pending_requests.max(1) {
            self.pending.pop_front();
            cx.fail(PROTOCOL, FailureReason::UnansweredRequest);
        }
        self.pending.push_back(PendingRequest {
            correlation_id: head.correlation_id,
            api_key: head.api_key,
            api_version: head.api_version,
            topic,
            timestamp_ns: message.start_ns,
        });
    }

    fn on_response(&mut self, cx: &mut ParseContext<'_>, message: Message) {
        let Some(correlation_id) = response_correlation_id(&message.prefix) else {
            cx.fail(PROTOCOL, FailureReason::Malformed);
            return;
        };
        let Some(position) = self
            .pending
            .iter()
            .position(|request| request.correlation_id == correlation_id)
        else {
            cx.fail(PROTOCOL, FailureReason::UnmatchedResponse);
            return;
        };
        let Some(request) = self.pending.remove(position) else {
            return;
        };
        let kafka = Kafka {
            error_code: i32::from(response_error_code(
                &message.prefix,
                request.api_key,
                request.api_version,
            )),
            api_version: i32::from(request.api_version),
            api_key: api_key_name(request.api_key),
            correlation_id,
            topic: request.topic,
        };
        let record = L7Record::Kafka(kafka);
        cx.push(Parsed {
            flow_type: L7FlowType::Response,
            latency_ns: message.start_ns.saturating_sub(request.timestamp_ns),
            record,
            timestamp_ns: message.start_ns,
            trace_id: None,
        });
    }
}
