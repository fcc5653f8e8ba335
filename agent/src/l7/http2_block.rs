//! One HTTP/2 header block as HPACK decodes it, without owned copies of what the record
//! does not keep: the pseudo-headers (and Host) land in a per-connection scratch text
//! that is reused for every block, the regular headers go straight into the record's
//! header list, canonical and redacted.

use std::ops::Range;

use loona_hpack::Decoder;
use loona_hpack::decoder::DecoderError;
use sightline_proto::flow::HttpHeader;

use super::headers::{push_header, text};
use super::redact::Redaction;

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
    /// Regular headers in arrival order; drained into each record.
    headers: Vec<HttpHeader>,
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
        self.headers.clear();
        self.method = None;
        self.scheme = None;
        self.authority = None;
        self.path = None;
        self.status = None;
        self.host = None;
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
                push_header(&mut self.headers, redaction, &text(name), value);
                if name != b"host" {
                    return;
                }
                &mut self.host
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

    /// Moves the block's regular headers out (one allocation of the exact size), keeping
    /// the scratch list's capacity for the next block.
    pub(super) fn take_headers(&mut self) -> Vec<HttpHeader> {
        self.headers.drain(..).collect()
    }

    /// Appends the block's regular headers to a list already built (trailers).
    pub(super) fn append_headers_to(&mut self, list: &mut Vec<HttpHeader>) {
        list.append(&mut self.headers);
    }
}
