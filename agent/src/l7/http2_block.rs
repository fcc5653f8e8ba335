//! One HTTP/2 header block as HPACK decodes it, without owned copies of what the record
//! does not keep: the pseudo-headers (and Host) land in a per-connection scratch text
//! that is reused for every block, the regular headers go into one packed, redacted
//! buffer per record (`HeaderFields`), which becomes Hubble's header list only when read.

use std::ops::Range;

use super::header_fields::{FieldsBuilder, HeaderFields};
use super::headers::text;
use super::redact::Redaction;
use super::trace_context::{self, TRACEPARENT, TraceId};
use loona_hpack::Decoder;
use loona_hpack::decoder::DecoderError;

#[derive(Default)]
pub(super) struct BlockFields {
    /// The values of the fields below, back to back.
    text: String,
    method: Option<Range<usize>>,
    scheme: Option<Range<usize>>,
    authority: Option<Range<usize>>,
    path: Option<Range<usize>>,
    status: Option<Range<usize>>,
    host: Option<Range<usize>>,
    /// The first `traceparent`, as Go's `Header.Get` would pick it.
    traceparent: Option<Range<usize>>,
    /// Regular headers in arrival order; taken by each record.
    fields: FieldsBuilder,
}

impl BlockFields {
    /// Decodes `block` with the direction's HPACK table, replacing the previous block's fields.
    pub(super) fn decode(
        &mut self,
        decoder: &mut Decoder<'static>,
        redaction: &Redaction,
        block: &[u8],
    ) -> Result<(), DecoderError> {
        self.text.clear();
        self.fields.clear();
        self.method = None;
        self.scheme = None;
        self.authority = None;
        self.path = None;
        self.status = None;
        self.host = None;
        self.traceparent = None;
        decoder.decode_with_cb(block, |name, value| self.field(redaction, &name, &value))
    }

    fn field(&mut self, redaction: &Redaction, name: &[u8], value: &[u8]) {
        let slot = match name {
            b":method" => &mut self.method,
            b":scheme" => &mut self.scheme,
            b":authority" => &mut self.authority,
            b":path" => &mut self.path,
            b":status" => &mut self.status,
            // Other pseudo-headers (`:protocol`) are not shown.
            _ if name.starts_with(b":") => return,
            _ => {
                self.fields.push(redaction, name, value);
                match name {
                    b"host" => &mut self.host,
                    _ if name == TRACEPARENT.as_bytes() && self.traceparent.is_none() => &mut self.traceparent,
                    _ => return,
                }
            }
        };
        let start = self.text.len();
        self.text.push_str(&text(value));
        *slot = Some(start..self.text.len());
    }

    fn get(&self, range: &Option<Range<usize>>) -> Option<&str> {
        range.clone().and_then(|range| self.text.get(range))
    }

    pub(super) fn method(&self) -> Option<&str> {
        self.get(&self.method)
    }

    pub(super) fn scheme(&self) -> Option<&str> {
        self.get(&self.scheme)
    }

    /// `:authority`, or the Host header a client sent instead.
    pub(super) fn authority(&self) -> Option<&str> {
        self.get(&self.authority).or_else(|| self.get(&self.host))
    }

    pub(super) fn path(&self) -> Option<&str> {
        self.get(&self.path)
    }

    pub(super) fn status(&self) -> Option<&str> {
        self.get(&self.status)
    }

    /// The trace id of the block's `traceparent`, when it is a valid one.
    pub(super) fn trace_id(&self) -> Option<TraceId> {
        self.get(&self.traceparent)
            .and_then(|value| trace_context::trace_id(value.as_bytes()))
    }

    /// The block's regular headers (one allocation), keeping the scratch for the next block.
    pub(super) fn take_headers(&mut self) -> Option<HeaderFields> {
        self.fields.finish()
    }

    /// The block's regular headers after those of an earlier block (trailers).
    pub(super) fn append_headers_to(&mut self, fields: Option<HeaderFields>) -> Option<HeaderFields> {
        self.fields.append_to(fields)
    }
}
