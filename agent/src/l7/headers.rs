//! Header lists as Hubble shows them: keys in Go's canonical form (`content-type` →
//! `Content-Type`), sorted by key, each value its own entry in arrival order (built by
//! `header_fields` when a record is read), and the text rules they share.

use std::borrow::Cow;

use sightline_proto::flow::HttpHeader;

use super::http1_head::TOKEN;

/// The bytes as text, invalid UTF-8 replaced. Valid text (nearly always ASCII) takes the
/// standard library's fast validation instead of the chunked lossy decoder.
pub(crate) fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Sorts by key; stable, so repeated headers keep their order.
pub(crate) fn sort_headers(list: &mut [HttpHeader]) {
    list.sort_by(|a, b| a.key.cmp(&b.key));
}

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
}
