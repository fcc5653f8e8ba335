//! A record's header fields packed in one shared buffer, in arrival order and already
//! redacted. Hubble's header list (canonical keys, sorted, one `HttpHeader` with two owned
//! strings per field) costs two allocations per header; most records leave the ring
//! without a reader, so the list is built only when a flow is shown, exported or
//! filtered by header ([`HeaderFields::to_list`]).
//!
//! Two forms: HTTP/2 fields (decoded by HPACK, so they have to be copied out) are packed,
//! redacted, per field as a little-endian `u32` name length, the name, a `u32` value length
//! and the value. HTTP/1 fields are the header lines of the head the record already keeps,
//! redacted when the list is built.

use std::sync::Arc;

use sightline_proto::flow::HttpHeader;

use super::headers::{canonical_key, sort_headers, text};
use super::http_record::Span;
use super::http1_head::field_lines;
use super::redact::{REDACTED, Redaction};

/// The fields of one HTTP record (never empty: a record without headers has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderFields(Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    /// Packed as described above, values already redacted.
    Packed(Arc<[u8]>),
    /// The header lines (`lines`) of an HTTP/1 head, as the head scanner accepted them.
    Lines {
        head: Arc<[u8]>,
        lines: Span,
        redaction: Arc<Redaction>,
    },
}

impl HeaderFields {
    /// The header lines of an HTTP/1 head; `None` when there are none.
    pub(crate) fn http1_lines(head: &Arc<[u8]>, lines: Span, redaction: &Arc<Redaction>) -> Option<Self> {
        (!lines.of(head).is_empty()).then(|| {
            Self(Repr::Lines {
                head: Arc::clone(head),
                lines,
                redaction: Arc::clone(redaction),
            })
        })
    }

    /// Hubble's header list: keys in Go's canonical form, sorted by key (stable, so a
    /// repeated header keeps its values in arrival order).
    pub fn to_list(&self) -> Vec<HttpHeader> {
        let mut list: Vec<HttpHeader> = match &self.0 {
            Repr::Packed(packed) => pairs(packed)
                .map(|(name, value)| HttpHeader {
                    key: canonical_key(&text(name)),
                    value: text(value).into_owned(),
                })
                .collect(),
            Repr::Lines { head, lines, redaction } => field_lines(lines.of(head))
                .map(|(name, value)| {
                    let name = text(name);
                    let value = if redaction.keeps_header(&name) {
                        text(value).into_owned()
                    } else {
                        REDACTED.to_owned()
                    };
                    HttpHeader {
                        key: canonical_key(&name),
                        value,
                    }
                })
                .collect(),
        };
        sort_headers(&mut list);
        list
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(packed) => pairs(packed).count(),
            Repr::Lines { head, lines, .. } => field_lines(lines.of(head)).count(),
        }
    }

    /// Whether there are no fields (never, for a record's fields: see the type).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fields as stored: (name, value) in arrival order.
fn pairs(mut bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        let name = take_field(&mut bytes)?;
        let value = take_field(&mut bytes)?;
        Some((name, value))
    })
}

fn take_field<'b>(bytes: &mut &'b [u8]) -> Option<&'b [u8]> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let field = rest.get(..len)?;
    *bytes = &rest[len..];
    Some(field)
}

/// Collects one record's fields in a scratch buffer the parser reuses, so a record costs
/// one allocation for all its headers.
#[derive(Debug, Default)]
pub(crate) struct FieldsBuilder {
    buf: Vec<u8>,
}

impl FieldsBuilder {
    pub(super) fn clear(&mut self) {
        self.buf.clear();
    }

    /// Adds a field, its value replaced by Hubble's redaction text when the allow/deny
    /// lists say so (the lists compare names case-insensitively, so the raw name decides
    /// as the canonical key would).
    pub(super) fn push(&mut self, redaction: &Redaction, name: &[u8], value: &[u8]) {
        // Without lists nothing is redacted: skip the name's UTF-8 check.
        let lists = !(redaction.headers_allow.is_empty() && redaction.headers_deny.is_empty());
        let value = if lists && !redaction.keeps_header(&text(name)) {
            REDACTED.as_bytes()
        } else {
            value
        };
        self.buf.reserve(8 + name.len() + value.len());
        push_field(&mut self.buf, name);
        push_field(&mut self.buf, value);
    }

    /// The fields collected since the last `clear` or `finish`, or `None` when there
    /// were none; the builder is empty afterwards.
    pub(super) fn finish(&mut self) -> Option<HeaderFields> {
        let fields = (!self.buf.is_empty()).then(|| HeaderFields(Repr::Packed(Arc::from(self.buf.as_slice()))));
        self.buf.clear();
        fields
    }

    /// `fields` followed by the ones collected here (gRPC trailers join the response's
    /// headers); the builder is empty afterwards.
    pub(super) fn append_to(&mut self, fields: Option<HeaderFields>) -> Option<HeaderFields> {
        match fields {
            None => self.finish(),
            Some(fields) if self.buf.is_empty() => Some(fields),
            Some(HeaderFields(Repr::Packed(packed))) => {
                let mut joined = Vec::with_capacity(packed.len() + self.buf.len());
                joined.extend_from_slice(&packed);
                joined.extend_from_slice(&self.buf);
                self.buf.clear();
                Some(HeaderFields(Repr::Packed(Arc::from(joined))))
            }
            // Trailers follow HTTP/2 headers only, which are always packed.
            Some(fields) => {
                self.buf.clear();
                Some(fields)
            }
        }
    }
}

fn push_field(buf: &mut Vec<u8>, field: &[u8]) {
    // Heads are bounded far below 4 GiB (`max_head_bytes`, HTTP/2 frame buffers).
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&field[..len as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(redaction: &Redaction, list: &[(&str, &str)]) -> Option<HeaderFields> {
        let mut builder = FieldsBuilder::default();
        for (name, value) in list {
            builder.push(redaction, name.as_bytes(), value.as_bytes());
        }
        builder.finish()
    }

    fn shown(fields: &HeaderFields) -> Vec<(String, String)> {
        fields.to_list().into_iter().map(|h| (h.key, h.value)).collect()
    }

    #[test]
    fn the_list_has_canonical_keys_sorted_with_repeated_values_in_arrival_order() {
        let fields = fields(
            &Redaction::default(),
            &[("via", "b"), ("accept", "x"), ("Via", "a"), ("x-b3-traceid", "7")],
        )
        .expect("four fields");
        assert_eq!(fields.len(), 4);
        assert_eq!(
            shown(&fields),
            [("Accept", "x"), ("Via", "b"), ("Via", "a"), ("X-B3-Traceid", "7")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn values_are_redacted_when_collected_and_bad_utf8_replaced() {
        let redaction = Redaction {
            headers_deny: vec!["Authorization".into()],
            ..Redaction::default()
        };
        let mut builder = FieldsBuilder::default();
        builder.push(&redaction, b"authorization", b"Bearer x");
        builder.push(&redaction, b"x-raw", b"a\xffb");
        let fields = builder.finish().expect("two fields");
        assert_eq!(
            shown(&fields),
            [("Authorization", REDACTED), ("X-Raw", "a\u{fffd}b")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(builder.finish(), None, "the builder starts over after finish");
    }

    #[test]
    fn trailers_join_the_headers_they_follow() {
        let redaction = Redaction::default();
        let mut builder = FieldsBuilder::default();
        builder.push(&redaction, b"grpc-status", b"0");
        let headers = fields(&redaction, &[("content-type", "application/grpc")]);
        let joined = builder.append_to(headers.clone()).expect("joined");
        assert_eq!(
            shown(&joined),
            [("Content-Type", "application/grpc"), ("Grpc-Status", "0")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(builder.append_to(headers.clone()), headers, "no trailers: unchanged");
        assert_eq!(builder.append_to(None), None);
    }
}
