//! HTTP/1.x: request and response heads (parsed with `httparse`), bodies skipped by
//! Content-Length or chunk sizes (also across uncaptured bytes), responses matched to
//! requests in order (keep-alive, pipelining), and resynchronisation at the next message
//! start after garbage or a gap inside a head.

use std::collections::VecDeque;

use sightline_proto::flow::{Http, L7FlowType, layer7::Record};

use super::L7Protocol;
use super::detect::starts_with_request_line;
use super::header_fields::{FieldsBuilder, HeaderFields};
use super::headers::text;
use super::stats::FailureReason;
use super::trace_context::{self, TRACEPARENT};
use super::tracker::{Direction, ParseContext, Parsed, StreamParser};

const PROTOCOL: L7Protocol = L7Protocol::Http1;
/// Headers per message httparse may return; more is treated as malformed.
const MAX_HEADERS: usize = 96;
/// A chunk-size or trailer line longer than this is not chunked encoding.
const MAX_CHUNK_LINE: usize = 1024;

#[derive(Default)]
pub(crate) struct Http1Parser {
    requests: Half,
    responses: Half,
    /// Requests waiting for their response, oldest first. `None` stands for a request
    /// known to exist but lost in a gap, so later responses still pair up in order.
    pending: VecDeque<Option<PendingRequest>>,
    /// Scratch for the header fields of the head being read.
    fields: FieldsBuilder,
}

struct PendingRequest {
    method: String,
    url: String,
    timestamp_ns: u64,
    /// The request's trace, which Hubble also shows on the response.
    trace_id: Option<String>,
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
        // Uninitialised: httparse writes only the slots it fills, so a head does not pay
        // for clearing all of them first.
        let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        match direction {
            Direction::ToServer => {
                let mut request = httparse::Request::new(&mut []);
                match request.parse_with_uninit_headers(bytes, &mut headers) {
                    Ok(httparse::Status::Complete(len)) => {
                        self.on_request(cx, &request);
                        HeadOutcome::Complete(len)
                    }
                    Ok(httparse::Status::Partial) => HeadOutcome::Partial,
                    Err(_) => HeadOutcome::Invalid,
                }
            }
            Direction::ToClient => {
                let mut response = httparse::Response::new(&mut []);
                match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut response,
                    bytes,
                    &mut headers,
                ) {
                    Ok(httparse::Status::Complete(len)) => {
                        self.on_response(cx, &response);
                        HeadOutcome::Complete(len)
                    }
                    Ok(httparse::Status::Partial) => HeadOutcome::Partial,
                    Err(_) => HeadOutcome::Invalid,
                }
            }
        }
    }

    fn on_request(&mut self, cx: &mut ParseContext<'_>, request: &httparse::Request<'_, '_>) {
        let method = request.method.unwrap_or_default();
        let target = request.path.unwrap_or_default();
        let mut url = if target.starts_with('/') || target == "*" {
            let host = request
                .headers
                .iter()
                .find(|header| header.name.eq_ignore_ascii_case("host"))
                .map(|header| text(header.value))
                .unwrap_or_default();
            let mut url = String::with_capacity("http://".len() + host.len() + target.len());
            url.push_str("http://");
            url.push_str(&host);
            url.push_str(target);
            url
        } else {
            // Absolute form (a request to a proxy) or CONNECT's authority form.
            target.to_owned()
        };
        cx.settings.redaction.redact_url(&mut url);
        let framing = body_framing(request.headers);
        self.requests.body = match framing {
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
        let trace_id = request
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(TRACEPARENT))
            .and_then(|header| trace_context::trace_id(header.value));
        let pending = PendingRequest {
            method: method.to_owned(),
            url: url.clone(),
            timestamp_ns,
            trace_id: trace_id.clone(),
        };
        let http = Http {
            code: 0,
            method: method.to_owned(),
            url,
            protocol: protocol_name(request.version).to_owned(),
            headers: Vec::new(),
        };
        cx.out.push(Parsed {
            flow_type: L7FlowType::Request,
            latency_ns: 0,
            record: Record::Http(http),
            timestamp_ns,
            headers: header_fields(&mut self.fields, cx, request.headers),
            trace_id,
        });
        self.push_pending(cx, Some(pending));
    }

    fn on_response(&mut self, cx: &mut ParseContext<'_>, response: &httparse::Response<'_, '_>) {
        let code = response.code.unwrap_or_default();
        let timestamp_ns = self.responses.head_start_ns;
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&code) && code != 101 {
            self.responses.body = Body::Head;
            return;
        }
        let request = match self.pending.pop_front() {
            Some(Some(request)) => request,
            Some(None) => {
                self.responses.body = response_body(cx, response.headers, code, false);
                return;
            }
            None => {
                cx.fail(PROTOCOL, FailureReason::UnmatchedResponse);
                self.responses.body = response_body(cx, response.headers, code, false);
                return;
            }
        };
        self.responses.body = response_body(cx, response.headers, code, request.method == "HEAD");
        if code == 101 {
            // The connection speaks another protocol from here on.
            self.requests.body = Body::UntilClose;
            self.responses.body = Body::UntilClose;
        }
        let http = Http {
            code: u32::from(code),
            method: request.method,
            url: request.url,
            protocol: protocol_name(response.version).to_owned(),
            headers: Vec::new(),
        };
        cx.out.push(Parsed {
            flow_type: L7FlowType::Response,
            latency_ns: timestamp_ns.saturating_sub(request.timestamp_ns),
            record: Record::Http(http),
            timestamp_ns,
            headers: header_fields(&mut self.fields, cx, response.headers),
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

/// How a message's body is delimited, from its headers (RFC 9112 §6.3).
enum Framing {
    None,
    Chunked,
    Length(u64),
    BadLength,
}

fn body_framing(headers: &[httparse::Header<'_>]) -> Framing {
    let mut length = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked_last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if chunked_last {
                return Framing::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse::<u64>().ok());
            match (parsed, length) {
                (Some(value), None) => length = Some(value),
                (Some(value), Some(previous)) if value == previous => {}
                _ => return Framing::BadLength,
            }
        }
    }
    length.map_or(Framing::None, Framing::Length)
}

fn response_body(cx: &mut ParseContext<'_>, headers: &[httparse::Header<'_>], code: u16, head_request: bool) -> Body {
    if head_request || code == 204 || code == 304 {
        return Body::Head;
    }
    match body_framing(headers) {
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

fn protocol_name(version: Option<u8>) -> &'static str {
    match version {
        Some(0) => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

fn header_fields(
    builder: &mut FieldsBuilder,
    cx: &ParseContext<'_>,
    headers: &[httparse::Header<'_>],
) -> Option<HeaderFields> {
    builder.clear();
    for header in headers {
        builder.push(&cx.settings.redaction, header.name.as_bytes(), header.value);
    }
    builder.finish()
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
