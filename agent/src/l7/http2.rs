//! HTTP/2 (and so gRPC) from the connection preface on: frames are followed in both
//! directions, HEADERS/CONTINUATION/PUSH_PROMISE blocks decoded with HPACK (one dynamic
//! table per direction, so every block must be seen), DATA payload skipped (also when it
//! was not captured). A request is emitted at its HEADERS; the response when its stream
//! ends, so gRPC's trailers (`grpc-status`) join the response's headers.
//!
//! A connection joined after its start, or one whose framing or header blocks were
//! lost, cannot be decoded any more: that is counted once and the connection skipped.

use loona_hpack::Decoder;
use sightline_proto::flow::L7FlowType;

use super::detect::HTTP2_PREFACE;
use super::header_fields::HeaderFields;
use super::http_record::{HttpRecord, RequestText};
use super::http2_block::BlockFields;
use super::stats::FailureReason;
use super::trace_context::TraceId;
use super::tracker::{Direction, ParseContext, Parsed, StreamParser};
use super::{L7Protocol, L7Record};

const PROTOCOL: L7Protocol = L7Protocol::Http2;
const PROTOCOL_NAME: &str = "HTTP/2";
const FRAME_HEADER_LEN: usize = 9;
/// Frames whose payload is read (header blocks, RST_STREAM) are buffered up to this size.
const MAX_BUFFERED_FRAME: usize = 64 * 1024;
/// The largest HPACK table a peer may ask for; bounds memory per connection.
const MAX_HPACK_TABLE: usize = 64 * 1024;

const FRAME_DATA: u8 = 0;
const FRAME_HEADERS: u8 = 1;
const FRAME_SETTINGS: u8 = 4;
const FRAME_RST_STREAM: u8 = 3;
const FRAME_PUSH_PROMISE: u8 = 5;
const FRAME_CONTINUATION: u8 = 9;

const FLAG_END_STREAM: u8 = 0x1;
/// SETTINGS acknowledgement (same bit as END_STREAM, on another frame type).
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

pub(crate) struct Http2Parser {
    /// Bytes of the client preface still expected; the connection is only followed from it.
    preface_left: usize,
    /// The server's own preface (its first SETTINGS) was seen before the client's finished.
    server_started: bool,
    dead: bool,
    readers: [FrameReader; 2],
    decoders: [Decoder<'static>; 2],
    /// Open streams by id; ids grow, so the first entry is the oldest. A handful at a
    /// time (at most `max_pending_requests`), so a vector beats a tree here.
    streams: Vec<(u32, StreamState)>,
    /// The header block being decoded; reused so pseudo-headers cost no allocation.
    fields: BlockFields,
    /// Where a request's method and URL are put together before its record copies them.
    request_text: Vec<u8>,
}

impl Default for Http2Parser {
    fn default() -> Self {
        let decoder = || {
            let mut decoder = Decoder::new();
            decoder.set_max_allowed_table_size(MAX_HPACK_TABLE);
            decoder
        };
        Self {
            preface_left: HTTP2_PREFACE.len(),
            server_started: false,
            dead: false,
            readers: Default::default(),
            decoders: [decoder(), decoder()],
            streams: Vec::new(),
            fields: BlockFields::default(),
            request_text: Vec::new(),
        }
    }
}

#[derive(Default)]
struct FrameReader {
    /// A frame header or payload that is not complete yet.
    buf: Vec<u8>,
    /// The frame whose payload is being buffered.
    current: Option<FrameHeader>,
    /// Payload bytes of an uninteresting frame still to pass.
    skip: u64,
    /// A header block waiting for its CONTINUATION frames.
    block: Option<HeaderBlock>,
}

/// Where a header block belongs.
#[derive(Clone, Copy)]
struct BlockInfo {
    stream_id: u32,
    end_stream: bool,
    /// PUSH_PROMISE blocks are decoded only to keep the HPACK table in step.
    promise: bool,
    timestamp_ns: u64,
}

/// A header block split over CONTINUATION frames, collected until its last one.
struct HeaderBlock {
    info: BlockInfo,
    fragments: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
struct FrameHeader {
    length: usize,
    kind: u8,
    flags: u8,
    stream_id: u32,
}

/// The server's connection preface: a SETTINGS frame (not an ACK) on stream 0.
fn starts_with_server_preface(input: &[u8]) -> bool {
    FrameHeader::parse(input).is_some_and(|h| h.kind == FRAME_SETTINGS && h.flags & FLAG_ACK == 0 && h.stream_id == 0)
}

impl FrameHeader {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let header: &[u8; FRAME_HEADER_LEN] = bytes.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
        Some(Self {
            length: usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]),
            kind: header[3],
            flags: header[4],
            stream_id: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff,
        })
    }

    /// Frames whose payload matters; the others are skipped by length.
    fn wants_payload(&self) -> bool {
        matches!(
            self.kind,
            FRAME_HEADERS | FRAME_CONTINUATION | FRAME_PUSH_PROMISE | FRAME_RST_STREAM
        )
    }
}

struct StreamState {
    /// Method and URL, shared with the response's record.
    request: RequestText,
    request_ns: u64,
    /// The request's trace, which Hubble also shows on the response.
    trace_id: Option<TraceId>,
    /// The response, held until the stream ends so trailers can join its headers.
    response: Option<HeldResponse>,
}

struct HeldResponse {
    code: u32,
    headers: Option<HeaderFields>,
    timestamp_ns: u64,
}

impl StreamParser for Http2Parser {
    fn data(&mut self, cx: &mut ParseContext<'_>, direction: Direction, mut input: &[u8], timestamp_ns: u64) {
        if self.dead {
            return;
        }
        if self.preface_left > 0 {
            if direction == Direction::ToClient {
                // A server sends its SETTINGS as soon as it accepts, without waiting for
                // the client's preface, so that segment can pass the capture point first.
                // Only a server stream that starts with it is followed this early.
                if !self.server_started && !starts_with_server_preface(input) {
                    self.give_up(cx, FailureReason::MidConnection);
                    return;
                }
                self.server_started = true;
            } else {
                let expected = &HTTP2_PREFACE[HTTP2_PREFACE.len() - self.preface_left..];
                let take = expected.len().min(input.len());
                if input[..take] != expected[..take] {
                    self.give_up(cx, FailureReason::MidConnection);
                    return;
                }
                self.preface_left -= take;
                input = &input[take..];
            }
        }
        while !input.is_empty() && !self.dead {
            input = self.step(cx, direction, input, timestamp_ns);
        }
    }

    fn gap(&mut self, cx: &mut ParseContext<'_>, direction: Direction, len: u32) {
        if self.dead {
            return;
        }
        let reader = &mut self.readers[direction as usize];
        let len = u64::from(len);
        if self.preface_left == 0 && reader.current.is_none() && reader.buf.is_empty() && len <= reader.skip {
            reader.skip -= len;
            return;
        }
        // Frame boundaries or a header block were not seen: HPACK state is unknown now.
        self.give_up(cx, FailureReason::GapInHead);
    }

    fn close(&mut self, cx: &mut ParseContext<'_>) {
        self.finish_all(cx);
    }
}

impl Http2Parser {
    /// Consumes one piece of a frame from `input`; returns what is left.
    fn step<'i>(
        &mut self,
        cx: &mut ParseContext<'_>,
        direction: Direction,
        input: &'i [u8],
        timestamp_ns: u64,
    ) -> &'i [u8] {
        let reader = &mut self.readers[direction as usize];
        if reader.skip > 0 {
            let take = usize::try_from(reader.skip).unwrap_or(usize::MAX).min(input.len());
            reader.skip -= take as u64;
            return &input[take..];
        }
        let Some(frame) = reader.current else {
            let (header, rest) = match fill(&mut reader.buf, input, FRAME_HEADER_LEN) {
                Some(filled) => filled,
                None => return &[],
            };
            let Some(frame) = FrameHeader::parse(&header) else {
                return rest;
            };
            if frame.wants_payload() {
                if frame.length > MAX_BUFFERED_FRAME {
                    self.give_up(cx, FailureReason::HeadTooLarge);
                    return &[];
                }
                reader.current = Some(frame);
                if frame.length == 0 {
                    reader.current = None;
                    self.on_frame(cx, direction, frame, &[], timestamp_ns);
                }
            } else {
                reader.skip = frame.length as u64;
                self.on_frame(cx, direction, frame, &[], timestamp_ns);
            }
            return rest;
        };
        let (payload, rest) = match fill(&mut reader.buf, input, frame.length) {
            Some(filled) => filled,
            None => return &[],
        };
        reader.current = None;
        self.on_frame(cx, direction, frame, &payload, timestamp_ns);
        rest
    }

    fn on_frame(
        &mut self,
        cx: &mut ParseContext<'_>,
        direction: Direction,
        frame: FrameHeader,
        payload: &[u8],
        timestamp_ns: u64,
    ) {
        let reader = &mut self.readers[direction as usize];
        if reader.block.is_some() && frame.kind != FRAME_CONTINUATION {
            // RFC 9113 §6.10: nothing may come between a header block's frames.
            self.give_up(cx, FailureReason::Malformed);
            return;
        }
        match frame.kind {
            FRAME_HEADERS | FRAME_PUSH_PROMISE => {
                let Some(fragment) = header_fragment(&frame, payload) else {
                    self.give_up(cx, FailureReason::Malformed);
                    return;
                };
                let info = BlockInfo {
                    stream_id: frame.stream_id,
                    end_stream: frame.kind == FRAME_HEADERS && frame.flags & FLAG_END_STREAM != 0,
                    promise: frame.kind == FRAME_PUSH_PROMISE,
                    timestamp_ns,
                };
                if frame.flags & FLAG_END_HEADERS != 0 {
                    // The whole block is in this frame: decode it where it lies.
                    self.decode_block(cx, direction, info, fragment);
                } else {
                    reader.block = Some(HeaderBlock {
                        info,
                        fragments: fragment.to_vec(),
                    });
                }
            }
            FRAME_CONTINUATION => {
                let Some(mut block) = reader.block.take() else {
                    self.give_up(cx, FailureReason::Malformed);
                    return;
                };
                if block.info.stream_id != frame.stream_id || block.fragments.len() + payload.len() > MAX_BUFFERED_FRAME
                {
                    self.give_up(cx, FailureReason::Malformed);
                    return;
                }
                block.fragments.extend_from_slice(payload);
                if frame.flags & FLAG_END_HEADERS != 0 {
                    self.decode_block(cx, direction, block.info, &block.fragments);
                } else {
                    reader.block = Some(block);
                }
            }
            FRAME_DATA if frame.flags & FLAG_END_STREAM != 0 && direction == Direction::ToClient => {
                self.finish_stream(cx, frame.stream_id);
            }
            FRAME_RST_STREAM => self.finish_stream(cx, frame.stream_id),
            _ => {}
        }
    }

    fn decode_block(&mut self, cx: &mut ParseContext<'_>, direction: Direction, block: BlockInfo, fragment: &[u8]) {
        let decoder = &mut self.decoders[direction as usize];
        if self.fields.decode(decoder, &cx.settings.redaction, fragment).is_err() {
            self.give_up(cx, FailureReason::Hpack);
            return;
        }
        if block.promise {
            return;
        }
        match direction {
            Direction::ToServer => self.on_request_headers(cx, &block),
            Direction::ToClient => self.on_response_headers(cx, &block),
        }
    }

    fn stream_index(&self, stream_id: u32) -> Result<usize, usize> {
        self.streams.binary_search_by_key(&stream_id, |(id, _)| *id)
    }

    fn on_request_headers(&mut self, cx: &mut ParseContext<'_>, block: &BlockInfo) {
        let Err(at) = self.stream_index(block.stream_id) else {
            return; // Request trailers: nothing Hubble shows.
        };
        let fields = &mut self.fields;
        let request = RequestText::packed(
            &mut self.request_text,
            fields.method().unwrap_or_default(),
            [
                fields.scheme().unwrap_or("http"),
                "://",
                fields.authority().unwrap_or_default(),
                fields.path().unwrap_or_default(),
            ],
            cx.redaction,
        );
        let trace_id = fields.trace_id();
        cx.push(Parsed {
            flow_type: L7FlowType::Request,
            latency_ns: 0,
            record: L7Record::Http(HttpRecord {
                code: 0,
                protocol: PROTOCOL_NAME,
                request: request.clone(),
                headers: fields.take_headers(),
            }),
            timestamp_ns: block.timestamp_ns,
            trace_id,
        });
        let stream = StreamState {
            request,
            request_ns: block.timestamp_ns,
            trace_id,
            response: None,
        };
        let mut at = at;
        if self.streams.len() >= cx.settings.max_pending_requests.max(1) {
            self.streams.remove(0);
            at = at.saturating_sub(1);
            cx.fail(PROTOCOL, FailureReason::UnansweredRequest);
        }
        self.streams.insert(at, (block.stream_id, stream));
    }

    fn on_response_headers(&mut self, cx: &mut ParseContext<'_>, block: &BlockInfo) {
        let Ok(at) = self.stream_index(block.stream_id) else {
            cx.fail(PROTOCOL, FailureReason::UnmatchedResponse);
            return;
        };
        let stream = &mut self.streams[at].1;
        match &mut stream.response {
            Some(held) => {
                // Trailers (gRPC's grpc-status) belong to the response.
                held.headers = self.fields.append_headers_to(held.headers.take());
            }
            None => {
                let code = self
                    .fields
                    .status()
                    .and_then(|status| status.parse::<u32>().ok())
                    .unwrap_or(0);
                if (100..200).contains(&code) {
                    return;
                }
                stream.response = Some(HeldResponse {
                    code,
                    headers: self.fields.take_headers(),
                    timestamp_ns: block.timestamp_ns,
                });
            }
        }
        if block.end_stream {
            self.finish_stream(cx, block.stream_id);
        }
    }

    /// Emits the held response of a stream that ended (by END_STREAM or RST_STREAM).
    fn finish_stream(&mut self, cx: &mut ParseContext<'_>, stream_id: u32) {
        if let Ok(at) = self.stream_index(stream_id) {
            let (_, stream) = self.streams.remove(at);
            emit_finished(cx, stream);
        }
    }

    fn finish_all(&mut self, cx: &mut ParseContext<'_>) {
        for (_, stream) in self.streams.drain(..) {
            emit_finished(cx, stream);
        }
    }

    /// Stops following the connection: counted once, responses already seen still emitted.
    fn give_up(&mut self, cx: &mut ParseContext<'_>, reason: FailureReason) {
        if self.dead {
            return;
        }
        self.dead = true;
        cx.fail(PROTOCOL, reason);
        self.finish_all(cx);
        self.readers = Default::default();
    }
}

/// Completes `buf` to `len` bytes from `input`. Returns the complete bytes and the rest of
/// `input`, or `None` (with everything buffered) when `input` was not enough.
fn fill<'i>(buf: &mut Vec<u8>, input: &'i [u8], len: usize) -> Option<(std::borrow::Cow<'i, [u8]>, &'i [u8])> {
    if buf.is_empty() && input.len() >= len {
        return Some((std::borrow::Cow::Borrowed(&input[..len]), &input[len..]));
    }
    let take = (len - buf.len()).min(input.len());
    buf.extend_from_slice(&input[..take]);
    if buf.len() < len {
        return None;
    }
    Some((std::borrow::Cow::Owned(std::mem::take(buf)), &input[take..]))
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload, without padding,
/// priority fields or the promised stream id.
fn header_fragment<'p>(frame: &FrameHeader, payload: &'p [u8]) -> Option<&'p [u8]> {
    let mut start = 0;
    let mut pad = 0;
    if frame.flags & FLAG_PADDED != 0 {
        pad = usize::from(*payload.first()?);
        start = 1;
    }
    if frame.kind == FRAME_HEADERS && frame.flags & FLAG_PRIORITY != 0 {
        start += 5;
    }
    if frame.kind == FRAME_PUSH_PROMISE {
        start += 4;
    }
    let end = payload.len().checked_sub(pad)?;
    payload.get(start..end)
}

fn emit_finished(cx: &mut ParseContext<'_>, stream: StreamState) {
    match stream.response {
        Some(held) => cx.push(Parsed {
            flow_type: L7FlowType::Response,
            latency_ns: held.timestamp_ns.saturating_sub(stream.request_ns),
            record: L7Record::Http(HttpRecord {
                code: held.code,
                protocol: PROTOCOL_NAME,
                request: stream.request,
                headers: held.headers,
            }),
            timestamp_ns: held.timestamp_ns,
            trace_id: stream.trace_id,
        }),
        None => cx.fail(PROTOCOL, FailureReason::UnansweredRequest),
    }
}
