//! Content detection: the first payload bytes of a connection tell HTTP/1 requests, the
//! HTTP/2 client preface and Kafka request headers apart from everything else.

use super::L7Protocol;

pub(crate) const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Methods of RFC 9110 plus WebDAV's common ones; a request line starts with one and a space.
const HTTP_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
];

/// The highest Kafka api_key this parser accepts as plausible in detection.
const MAX_KAFKA_API_KEY: i16 = 80;
/// Requests larger than this are not what a first Kafka request looks like.
const MAX_KAFKA_FIRST_REQUEST: i32 = 100 * 1024 * 1024;

/// Does this first payload look like an HTTP/1 request line, the HTTP/2 preface, or a
/// Kafka request header? `None` when it is none of them (or too short to tell).
pub fn detect(first_bytes: &[u8]) -> Option<L7Protocol> {
    if first_bytes.starts_with(HTTP2_PREFACE)
        || (first_bytes.len() < HTTP2_PREFACE.len() && HTTP2_PREFACE.starts_with(first_bytes) && first_bytes.len() >= 8)
    {
        return Some(L7Protocol::Http2);
    }
    if starts_with_request_line(first_bytes) {
        return Some(L7Protocol::Http1);
    }
    if looks_like_kafka_request(first_bytes) {
        return Some(L7Protocol::Kafka);
    }
    None
}

/// A method token, a space, then a request target starting with `/`, `*` or a scheme/authority.
pub(crate) fn starts_with_request_line(bytes: &[u8]) -> bool {
    HTTP_METHODS.iter().any(|method| {
        bytes.len() > method.len() + 1
            && bytes.starts_with(method)
            && bytes[method.len()] == b' '
            && bytes[method.len() + 1].is_ascii_graphic()
    })
}

/// Length prefix, api_key, api_version, correlation_id and the client_id string length
/// must all be in range, and the client_id (when present) printable.
fn looks_like_kafka_request(bytes: &[u8]) -> bool {
    let Some(header) = bytes.get(..14) else {
        return false;
    };
    let be_i32 = |at: usize| i32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let be_i16 = |at: usize| i16::from_be_bytes([header[at], header[at + 1]]);
    let length = be_i32(0);
    let api_key = be_i16(4);
    let api_version = be_i16(6);
    let correlation_id = be_i32(8);
    let client_id_len = be_i16(12);
    if !(10..=MAX_KAFKA_FIRST_REQUEST).contains(&length)
        || !(0..=MAX_KAFKA_API_KEY).contains(&api_key)
        || !(0..=20).contains(&api_version)
        || correlation_id < 0
        || client_id_len < -1
        || i32::from(client_id_len) > length - 10
    {
        return false;
    }
    let client_id_end = 14 + client_id_len.max(0) as usize;
    bytes
        .get(14..client_id_end.min(bytes.len()))
        .is_some_and(|client_id| client_id.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_protocol_from_its_first_bytes() {
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Some(L7Protocol::Http1));
        assert_eq!(detect(b"DELETE /x HTTP/1.0\r\n"), Some(L7Protocol::Http1));
        assert_eq!(detect(HTTP2_PREFACE), Some(L7Protocol::Http2));
        assert_eq!(detect(&HTTP2_PREFACE[..10]), Some(L7Protocol::Http2));
        let kafka = [
            &[0, 0, 0, 0x20][..],
            &[0, 3, 0, 12], // metadata v12
            &[0, 0, 0, 1],  // correlation id
            &[0, 6],        // client_id length
            b"rdkafk",
        ]
        .concat();
        assert_eq!(detect(&kafka), Some(L7Protocol::Kafka));
    }

    #[test]
    fn rejects_other_traffic() {
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"GETX / HTTP/1.1"), None);
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(
            detect(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x11\x22\x33"),
            None,
            "TLS ClientHello"
        );
        assert_eq!(detect(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
        // A Kafka-shaped header whose client_id is not text.
        let binary = [
            &[0, 0, 0, 0x20][..],
            &[0, 3, 0, 12],
            &[0, 0, 0, 1],
            &[0, 4],
            &[0, 1, 2, 3],
        ]
        .concat();
        assert_eq!(detect(&binary), None);
    }
}
