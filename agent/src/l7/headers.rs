//! Header lists as Hubble shows them: keys in Go's canonical form (`content-type` →
//! `Content-Type`), values redacted as configured, sorted by key, each value its own
//! entry in arrival order. Built once, straight from the parser's borrowed fields: a
//! kept header costs its two strings and nothing else.

use std::borrow::Cow;

use sightline_proto::flow::HttpHeader;

use super::redact::{REDACTED, Redaction};

/// Appends one header field as it may be shown.
pub(crate) fn push_header(list: &mut Vec<HttpHeader>, redaction: &Redaction, name: &str, value: &[u8]) {
    let key = canonical_key(name);
    let value = if redaction.keeps_header(&key) {
        owned_text(value)
    } else {
        REDACTED.to_owned()
    };
    list.push(HttpHeader { key, value });
}

/// The bytes as text, invalid UTF-8 replaced. Valid text (nearly always ASCII) takes the
/// standard library's fast validation instead of the chunked lossy decoder.
pub(crate) fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn owned_text(bytes: &[u8]) -> String {
    text(bytes).into_owned()
}

/// Sorts by key; stable, so repeated headers keep their order.
pub(crate) fn sort_headers(list: &mut [HttpHeader]) {
    list.sort_by(|a, b| a.key.cmp(&b.key));
}

/// RFC 9110 token characters.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    table
};

/// Go's `CanonicalMIMEHeaderKey`: upper case at the start and after each `-`, lower case
/// elsewhere; keys with bytes outside a token are left as they are.
pub(crate) fn canonical_key(key: &str) -> String {
    let mut canonical = Vec::with_capacity(key.len());
    let mut upper = true;
    for b in key.bytes() {
        if !TOKEN[usize::from(b)] {
            return key.to_owned();
        }
        canonical.push(if upper {
            b.to_ascii_uppercase()
        } else {
            b.to_ascii_lowercase()
        });
        upper = b == b'-';
    }
    if canonical.is_empty() {
        return key.to_owned();
    }
    // Token bytes are ASCII, so this is valid UTF-8 (checked by the fast ASCII path).
    String::from_utf8(canonical).unwrap_or_else(|_| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_go_canonical_form() {
        assert_eq!(canonical_key("content-TYPE"), "Content-Type");
        assert_eq!(canonical_key("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(canonical_key("bad key"), "bad key");
        assert_eq!(canonical_key("bäd"), "bäd");
        assert_eq!(canonical_key("-a--b-"), "-A--B-");
        assert_eq!(canonical_key("HOST"), "Host");
    }

    #[test]
    fn headers_are_sorted_by_key_keeping_repeated_values_in_order() {
        let redaction = Redaction::default();
        let mut list = Vec::new();
        push_header(&mut list, &redaction, "via", b"b");
        push_header(&mut list, &redaction, "accept", b"x");
        push_header(&mut list, &redaction, "Via", b"a");
        sort_headers(&mut list);
        let pairs: Vec<_> = list.iter().map(|h| (h.key.as_str(), h.value.as_str())).collect();
        assert_eq!(pairs, [("Accept", "x"), ("Via", "b"), ("Via", "a")]);
    }

    #[test]
    fn values_are_redacted_as_they_are_built() {
        let redaction = Redaction {
            headers_deny: vec!["authorization".into()],
            ..Redaction::default()
        };
        let mut list = Vec::new();
        push_header(&mut list, &redaction, "authorization", b"Bearer x");
        push_header(&mut list, &redaction, "accept", b"*/*");
        assert_eq!(list[0].value, REDACTED);
        assert_eq!(list[1].value, "*/*");
    }
}
