#![allow(clippy::unwrap_used)]

use super::*;

/// example.com. A query (id 0x1234) and its answer: a CNAME then an A record.
fn query() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(b"\x07example\x03com\x00");
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn response() -> Vec<u8> {
    let mut m = query();
    m[2] = 0x81;
    m[3] = 0x80;
    m[7] = 2;
    // www -> pointer to example.com (offset 12) as CNAME target.
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
    m.extend_from_slice(b"\x03www\xc0\x0c");
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 7]);
    m
}

#[test]
fn parses_a_query() {
    let q = parse(&query()).unwrap();
    assert_eq!(q.id, 0x1234);
    assert!(!q.is_response);
    assert_eq!(q.query, "example.com.");
    assert_eq!(q.qtypes, vec!["A"]);
    assert!(q.ips.is_empty());
}

#[test]
fn parses_answers_with_compression() {
    let r = parse(&response()).unwrap();
    assert!(r.is_response);
    assert_eq!(r.rcode, 0);
    assert_eq!(r.ips, vec!["10.0.0.7"]);
    assert_eq!(r.cnames, vec!["www.example.com."]);
    assert_eq!(r.rrtypes, vec!["CNAME", "A"]);
    assert_eq!(r.ttl, 30);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let full = response();
    for len in 0..full.len() {
        assert!(parse(&full[..len]).is_err(), "prefix of {len} bytes parsed");
    }
}

#[test]
fn pointer_loops_are_rejected() {
    let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(parse(&m), Err(DnsError::CompressionLoop(12)));
}

#[test]
fn a_tcp_segment_yields_every_length_prefixed_message() {
    let framed = |body: &[u8]| {
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    };
    let mut segment = framed(b"first");
    segment.extend(framed(b"second!"));
    segment.extend(framed(b"third"));
    let messages: Vec<&[u8]> = tcp_messages(&segment).collect();
    assert_eq!(messages, [&b"first"[..], b"second!", b"third"]);

    // A capture cut inside the second message: the first is whole, the second is not yielded.
    let cut = &segment[..2 + 5 + 2 + 3];
    assert_eq!(tcp_messages(cut).collect::<Vec<_>>(), [&b"first"[..]]);
    // The first message is yielded even when cut (the parser reads what it can).
    assert_eq!(tcp_messages(&segment[..4]).collect::<Vec<_>>(), [&b"fi"[..]]);
    // A zero length or a lone byte ends the walk.
    assert!(tcp_messages(&[0, 0, 1, 2]).next().is_none());
    assert!(tcp_messages(&[7]).next().is_none());
}
