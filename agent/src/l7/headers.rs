//! Header lists as Hubble shows them: keys in Go's canonical form (`content-type` →
//! `Content-Type`), sorted by key, each value its own entry in arrival order.

use sightline_proto::flow::HttpHeader;

pub(crate) fn sorted_headers<'k>(headers: impl Iterator<Item = (&'k str, String)>) -> Vec<HttpHeader> {
    let mut list: Vec<HttpHeader> = headers
        .map(|(key, value)| HttpHeader {
            key: canonical_key(key),
            value,
        })
        .collect();
    // Stable, so repeated headers keep their order.
    list.sort_by(|a, b| a.key.cmp(&b.key));
    list
}

/// Go's `CanonicalMIMEHeaderKey`: upper case at the start and after each `-`, lower case
/// elsewhere; keys with bytes outside a token are left as they are.
pub(crate) fn canonical_key(key: &str) -> String {
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let bytes = key.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(|&b| is_token(b)) {
        return key.to_owned();
    }
    let mut canonical = Vec::with_capacity(bytes.len());
    let mut upper = true;
    for &b in bytes {
        canonical.push(if upper {
            b.to_ascii_uppercase()
        } else {
            b.to_ascii_lowercase()
        });
        upper = b == b'-';
    }
    // Only ASCII letters changed case, so the bytes are still the UTF-8 they were.
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
    }

    #[test]
    fn headers_are_sorted_by_key_keeping_repeated_values_in_order() {
        let list = sorted_headers(
            [
                ("via", "b".to_owned()),
                ("accept", "x".to_owned()),
                ("Via", "a".to_owned()),
            ]
            .into_iter(),
        );
        let pairs: Vec<_> = list.iter().map(|h| (h.key.as_str(), h.value.as_str())).collect();
        assert_eq!(pairs, [("Accept", "x"), ("Via", "b"), ("Via", "a")]);
    }
}
