//! HTTP/1.x: request and response heads (read by `http1_head`), bodies skipped by
//! Content-Length or chunk sizes (also across uncaptured bytes), responses matched to
//! requests in order (keep-alive, pipelining), and resynchronisation at the next message
//! start after garbage or a gap inside a head.

use std::collections::VecDeque;
use std::sync::Arc;

use sightline_proto::flow::L7FlowType;

use super::detect::starts_with_request_line;
use super::header_fields::HeaderFields;
use super::http_record::{HttpRecord, RequestText, Span};
use super::http1_head::{Framing, RequestHead, ResponseHead, Scan, scan_request, scan_response};
use super::stats::FailureReason;
use super::trace_context::{self, TraceId};
use super::tracker::{Direction, ParseContext, Parsed, StreamParser};
use super::{L7Protocol, L7Record};

const PROTOCOL: L7Protocol = L7Protocol::Http1;
/// A chunk-size or trailer line longer than this is not chunked encoding.
const MAX_CHUNK_LINE: usize = 1024;

#[derive(Default)]
pub(crate) struct Http1Parser {
    requests: Half,
    responses: Half,
    /// Requests waiting for their response, oldest first. `None` stands for a request
    /// known to exist but lost in a gap, so later responses still pair up in order.
    pending: VecDeque<Option<PendingRequest>>,
}

struct PendingRequest {
    /// Method and URL, shared with the response's record.
    request: RequestText,
    /// A response to HEAD has no body whatever its headers say.
    head_request: bool,
    timestamp_ns: u64,
    /// The request's trace, which Hubble also shows on the response.
    trace_id: Option<TraceId>,
}

/// One direction's framing state.
#[derive(Default)]
struct Half {
    /// A head (or chunk line) that is not complete yet.
    buf: Vec<u8>,
    body: Body,
    /// When the message in `buf` started.
    head_start_ns: u64,
    /// Bytes are being dropped until the next message start.
    lost: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Body {
    /// Between messages: the next bytes are a head.
    #[default]
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd(u8),
    Trailers,
    /// A response without length: the rest of the connection (also after `101`).
    UntilClose,
}

impl StreamParser for Http1Parser {
    fn data(&mut self, cx: &mut ParseContext<'_>, direction: Direction, bytes: &[u8], timestamp_ns: u64) {
        let mut input = bytes;
        while !input.is_empty() {
            let half = self.half(direction);
            input = match half.body {
                Body::Head => match self.head(cx, direction, input, timestamp_ns) {
                    Some(rest) => rest,
                    None => return,
                },
                Body::UntilClose => return,
                _ => match self.half(direction).body_bytes(cx, input) {
                    Some(rest) => rest,
                    None => return,
                },
            };
        }
    }

    fn gap(&mut self, cx: &mut ParseContext<'_>, direction: Direction, len: u32) {
        let len = u64::from(len);
        let half = self.half(direction);
        match half.body {
            Body::Fixed(remaining) | Body::ChunkData(remaining) if len <= remaining => {
                half.body = match half.body {
                    Body::Fixed(_) if len == remaining => Body::Head,
                    Body::Fixed(_) => Body::Fixed(remaining - len),
                    _ if len == remaining => Body::ChunkDataEnd(2),
                    _ => Body::ChunkData(remaining - len),
                };
                return;
            }
            Body::UntilClose => return,
            _ => {}
        }
        // The gap covers (part of) a head or of the chunk framing. A gap where a head
        // was due means a message started there and is lost.
        let was_lost = half.lost;
        let lost_head = half.body == Body::Head && !was_lost;
        half.buf.clear();
        half.body = Body::Head;
        half.lost = true;
        if !was_lost {
            cx.fail(PROTOCOL, FailureReason::GapInHead);
        }
        if lost_head {
            self.lost_message(cx, direction);
        }
    }

    fn close(&mut self, cx: &mut ParseContext<'_>) {
        for request in self.pending.drain(..) {
            if request.is_some() {
                cx.fail(PROTOCOL, FailureReason::UnansweredRequest);
            }
        }
    }
}

impl Http1Parser {
    fn half(&mut self, direction: Direction) -> &mut Half {
        match direction {
            Direction::ToServer => &mut self.requests,
            Direction::ToClient => &mut self.responses,
        }
    }

    fn push_pending(&mut self, cx: &mut ParseContext<'_>, request: Option<PendingRequest>) {
        if self.pending.len() >= cx.settings.max_pending_requests.max(1) && self.pending.pop_front().flatten().is_some()
        {
            cx.fail(PROTOCOL, FailureReason::UnansweredRequest);
        }
        self.pending.push_back(request);
    }

    /// Reads a head from `input` (continuing one already buffered). Returns the bytes
    /// after it, or `None` when everything was consumed (buffered or dropped).
    fn head<'i>(
        &mut self,
        cx: &mut ParseContext<'_>,
        direction: Direction,
        mut input: &'i [u8],
        timestamp_ns: u64,
    ) -> Option<&'i [u8]> {
        let half = self.half(direction);
        if half.lost {
            let start = find_message_start(direction, input)?;
            if start > 0 {
                cx.fail(PROTOCOL, FailureReason::Resync);
            }
            input = &input[start..];
            half.lost = false;
        }
        let buffered = half.buf.len();
        if buffered == 0 {
            half.head_start_ns = timestamp_ns;
        }
        let outcome = if buffered == 0 {
            self.parse_head(cx, direction, input)
        } else {
            let mut head = std::mem::take(&mut self.half(direction).buf);
            head.extend_from_slice(input);
            let outcome = self.parse_head(cx, direction, &head);
            self.half(direction).buf = head;
            outcome
        };
        let half = self.half(direction);
        match outcome {
            HeadOutcome::Complete(len) => {
                half.buf.clear();
                Some(input.get(len.saturating_sub(buffered)..).unwrap_or_default())
            }
            HeadOutcome::Partial => {
                if buffered + input.len() > cx.settings.max_head_bytes {
                    cx.fail(PROTOCOL, FailureReason::HeadTooLarge);
                    half.buf.clear();
                    half.lost = true;
                    self.lost_message(cx, direction);
                } else if buffered == 0 {
                    half.buf.extend_from_slice(input);
                }
                None
            }
            HeadOutcome::Invalid => {
                cx.fail(PROTOCOL, FailureReason::Malformed);
                half.buf.clear();
                half.lost = true;
                // Look for the next start after this one's first byte.
                Some(input.get(1..).unwrap_or_default())
            }
        }
    }

    /// Keeps requests and responses paired in order when one of them could not be read.
    fn lost_message(&mut self, cx: &mut ParseContext<'_>, direction: Direction) {
        match direction {
            Direction::ToServer => self.push_pending(cx, None),
            Direction::ToClient => {
                self.pending.pop_front();
            }
        }
    }

    fn parse_head(&mut self, cx: &mut ParseContext<'_>, direction: Direction, bytes: &[u8]) -> HeadOutcome {
        match direction {
            Direction::ToServer => match scan_request(bytes) {
                Scan::Complete(head) => {
                    self.on_request(cx, bytes, &head);
                    HeadOutcome::Complete(head.len)
                }
                Scan::Partial => HeadOutcome::Partial,
                Scan::Invalid => HeadOutcome::Invalid,
            },
            Direction::ToClient => match scan_response(bytes) {
                Scan::Complete(head) => {
                    self.on_response(cx, bytes, &head);
                    HeadOutcome::Complete(head.len)
                }
                Scan::Partial => HeadOutcome::Partial,
                Scan::Invalid => HeadOutcome::Invalid,
            },
        }
    }

    fn on_request(&mut self, cx: &mut ParseContext<'_>, bytes: &[u8], head: &RequestHead) {
        self.requests.body = match head.framing {
            Framing::Chunked => Body::ChunkSize,
            Framing::Length(0) | Framing::None => Body::Head,
            Framing::Length(len) => Body::Fixed(len),
            Framing::BadLength => {
                cx.fail(PROTOCOL, FailureReason::Malformed);
                self.requests.lost = true;
                Body::Head
            }
        };
        let timestamp_ns = self.requests.head_start_ns;
        let trace_id = head
            .traceparent
            .clone()
            .and_then(|value| trace_context::trace_id(&bytes[value]));
        // The record keeps the head (one copy); method, URL and headers are read from it.
        let kept: Arc<[u8]> = Arc::from(&bytes[..head.fields.end]);
        let request = RequestText::http1(
            Arc::clone(&kept),
            Span::new(head.method.clone()),
            head.host.clone().map(Span::new),
            Span::new(head.target.clone()),
            cx.redaction,
        );
        let pending = PendingRequest {
            head_request: request.method_is(b"HEAD"),
            request: request.clone(),
            timestamp_ns,
            trace_id,
        };
        cx.push(Parsed {
            flow_type: L7FlowType::Request,
            latency_ns: 0,
            record: L7Record::Http(HttpRecord {
                code: 0,
                protocol: protocol_name(head.minor_version),
                request,
                headers: HeaderFields::http1_lines(&kept, Span::new(head.fields.clone()), cx.redaction),
            }),
            timestamp_ns,
            trace_id,
        });
        self.push_pending(cx, Some(pending));
    }

    fn on_response(&mut self, cx: &mut ParseContext<'_>, bytes: &[u8], head: &ResponseHead) {
        let code = head.code;
        let timestamp_ns = self.responses.head_start_ns;
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&code) && code != 101 {
            self.responses.body = Body::Head;
            return;
        }
        let request = match self.pending.pop_front() {
            Some(Some(request)) => request,
            Some(None) => {
                self.responses.body = response_body(cx, head.framing, code, false);
                return;
            }
            None => {
                cx.fail(PROTOCOL, FailureReason::UnmatchedResponse);
                self.responses.body = response_body(cx, head.framing, code, false);
                return;
            }
        };
        self.responses.body = response_body(cx, head.framing, code, request.head_request);
        if code == 101 {
            // The connection speaks another protocol from here on.
            self.requests.body = Body::UntilClose;
            self.responses.body = Body::UntilClose;
        }
        let headers = if head.fields.is_empty() {
            None
        } else {
            let kept: Arc<[u8]> = Arc::from(&bytes[..head.fields.end]);
            HeaderFields::http1_lines(&kept, Span::new(head.fields.clone()), cx.redaction)
        };
        cx.push(Parsed {
            flow_type: L7FlowType::Response,
            latency_ns: timestamp_ns.saturating_sub(request.timestamp_ns),
            record: L7Record::Http(HttpRecord {
                code: u32::from(code),
                protocol: protocol_name(head.minor_version),
                request: request.request,
                headers,
            }),
            timestamp_ns,
            trace_id: request.trace_id,
        });
    }
}

enum HeadOutcome {
    Complete(usize),
    Partial,
    Invalid,
}

impl Half {
    /// Consumes body bytes by the framing in force. Returns the bytes after the body, or
    /// `None` when all of `input` belonged to it.
    fn body_bytes<'i>(&mut self, cx: &mut ParseContext<'_>, input: &'i [u8]) -> Option<&'i [u8]> {
        match self.body {
            Body::Fixed(remaining) | Body::ChunkData(remaining) => {
                let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
                let left = remaining - take as u64;
                self.body = match (self.body, left) {
                    (Body::Fixed(_), 0) => Body::Head,
                    (Body::Fixed(_), _) => Body::Fixed(left),
                    (_, 0) => Body::ChunkDataEnd(2),
                    _ => Body::ChunkData(left),
                };
                Some(&input[take..])
            }
            Body::ChunkDataEnd(left) => {
                let take = usize::from(left).min(input.len());
                self.body = if take == usize::from(left) {
                    Body::ChunkSize
                } else {
                    Body::ChunkDataEnd(left - take as u8)
                };
                Some(&input[take..])
            }
            Body::ChunkSize | Body::Trailers => {
                let Some(newline) = input.iter().position(|&b| b == b'\n') else {
                    self.buf.extend_from_slice(input);
                    if self.buf.len() > MAX_CHUNK_LINE {
                        self.chunk_framing_lost(cx);
                    }
                    return None;
                };
                self.buf.extend_from_slice(&input[..newline]);
                let line = std::mem::take(&mut self.buf);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if self.body == Body::Trailers {
                    if line.is_empty() {
                        self.body = Body::Head;
                    }
                } else {
                    match parse_chunk_size(line) {
                        Some(0) => self.body = Body::Trailers,
                        Some(size) => self.body = Body::ChunkData(size),
                        None => {
                            self.chunk_framing_lost(cx);
                            return Some(&input[newline + 1..]);
                        }
                    }
                }
                Some(&input[newline + 1..])
            }
            Body::Head | Body::UntilClose => None,
        }
    }

    fn chunk_framing_lost(&mut self, cx: &mut ParseContext<'_>) {
        cx.fail(PROTOCOL, FailureReason::Malformed);
        self.buf.clear();
        self.body = Body::Head;
        self.lost = true;
    }
}

fn response_body(cx: &mut ParseContext<'_>, framing: Framing, code: u16, head_request: bool) -> Body {
    if head_request || code == 204 || code == 304 {
        return Body::Head;
    }
    match framing {
        Framing::Chunked => Body::ChunkSize,
        Framing::Length(0) => Body::Head,
        Framing::Length(len) => Body::Fixed(len),
        Framing::None => Body::UntilClose,
        Framing::BadLength => {
            cx.fail(PROTOCOL, FailureReason::Malformed);
            Body::UntilClose
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let digits = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(digits, 16).ok()
}

fn protocol_name(minor_version: u8) -> &'static str {
    match minor_version {
        0 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// Where the next message starts: at the beginning of `input` or of any line in it.
fn find_message_start(direction: Direction, input: &[u8]) -> Option<usize> {
    let is_start = |at: &[u8]| match direction {
        Direction::ToServer => starts_with_request_line(at),
        Direction::ToClient => at.starts_with(b"HTTP/1."),
    };
    if is_start(input) {
        return Some(0);
    }
    input
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(at, _)| at + 1)
        .find(|&at| is_start(&input[at..]))
}
