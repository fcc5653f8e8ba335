//! Byte fixtures in the layout the kernel sends (netlink is host-endian; these are
//! little-endian, as on x86-64 and arm64).

use super::*;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn tcp(source: IpAddr, source_port: u16, destination: IpAddr, destination_port: u16) -> Tuple {
    Tuple {
        protocol: 6,
        source,
        source_port,
        destination,
        destination_port,
    }
}

/// A kernel answer for 10.0.0.2:40000 → 10.96.0.10:80 translated to the backend
/// 10.0.0.3:8080 and masqueraded to 10.0.0.1, sequence 7, with a CTA_STATUS the
/// parser has to skip.
#[rustfmt::skip]
const DNAT_ANSWER: [u8; 132] = [
    132, 0, 0, 0,  0x00, 0x01,  0, 0,  7, 0, 0, 0,  0x39, 0x30, 0, 0,
    2, 0, 0, 0,
    // CTA_TUPLE_ORIG
    52, 0, 0x01, 0x80,
      20, 0, 0x01, 0x80,
        8, 0, 1, 0,  10, 0, 0, 2,
        8, 0, 2, 0,  10, 96, 0, 10,
      28, 0, 0x02, 0x80,
        5, 0, 1, 0,  6, 0, 0, 0,
        6, 0, 2, 0,  0x9c, 0x40, 0, 0,
        6, 0, 3, 0,  0x00, 0x50, 0, 0,
    // CTA_TUPLE_REPLY
    52, 0, 0x02, 0x80,
      20, 0, 0x01, 0x80,
        8, 0, 1, 0,  10, 0, 0, 3,
        8, 0, 2, 0,  10, 0, 0, 1,
      28, 0, 0x02, 0x80,
        5, 0, 1, 0,  6, 0, 0, 0,
        6, 0, 2, 0,  0x1f, 0x90, 0, 0,
        6, 0, 3, 0,  0x9c, 0x40, 0, 0,
    // CTA_STATUS
    8, 0, 3, 0,  0, 0, 1, 0x9e,
];

#[test]
fn a_dnat_answer_yields_the_original_and_the_translated_tuple() {
    assert_eq!(
        parse_answer(&DNAT_ANSWER, 7).expect("parses"),
        Answer::Entry(Entry {
            original: tcp(v4(10, 0, 0, 2), 40000, v4(10, 96, 0, 10), 80),
            reply: tcp(v4(10, 0, 0, 3), 8080, v4(10, 0, 0, 1), 40000),
        })
    );
}

#[test]
fn an_answer_to_another_query_is_stale() {
    assert_eq!(parse_answer(&DNAT_ANSWER, 8).expect("parses"), Answer::Stale);
}

fn error_answer(sequence: u32, code: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&36u32.to_ne_bytes());
    out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&sequence.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&code.to_ne_bytes());
    out.extend_from_slice(&[0; 16]);
    out
}

#[test]
fn enoent_means_no_such_connection_and_other_errors_are_reported() {
    assert_eq!(
        parse_answer(&error_answer(3, -libc::ENOENT), 3).expect("parses"),
        Answer::Missing
    );
    let refused = parse_answer(&error_answer(3, -libc::EPERM), 3).expect_err("EPERM is an error");
    assert!(
        matches!(&refused, CtnetlinkError::Kernel(e) if e.raw_os_error() == Some(libc::EPERM)),
        "{refused}"
    );
}

#[test]
fn truncated_answers_are_malformed_not_panics() {
    for cut in [0, 10, 40, 80, 120] {
        let mut bytes = DNAT_ANSWER[..cut].to_vec();
        if bytes.len() >= 4 {
            bytes[0..4].copy_from_slice(&(cut as u32).to_ne_bytes());
        }
        assert!(
            matches!(parse_answer(&bytes, 7), Err(CtnetlinkError::Malformed(_))),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_get_request_names_the_tuple_nested_as_the_kernel_expects() {
    let mut out = Vec::new();
    let tuple = tcp(v4(10, 0, 0, 2), 40000, v4(10, 96, 0, 10), 80);
    encode_get(7, &tuple, Named::Original, &mut out);
    // The request is the answer's header and first tuple, as a GET with NLM_F_REQUEST.
    let mut expected = DNAT_ANSWER[..20 + 52].to_vec();
    expected[0] = 72;
    expected[4] = 0x01;
    expected[6] = 1;
    expected[12..16].copy_from_slice(&[0; 4]);
    assert_eq!(out, expected);

    encode_get(8, &tuple.reversed(), Named::Reply, &mut out);
    assert_eq!(&out[22..24], &[0x02, 0x80], "CTA_TUPLE_REPLY, nested");
}

#[test]
fn ipv6_tuples_use_the_v6_attributes_and_family() {
    let source: IpAddr = "fd00::2".parse().expect("ip");
    let destination: IpAddr = "fd00:96::a".parse().expect("ip");
    let mut out = Vec::new();
    encode_get(1, &tcp(source, 1, destination, 2), Named::Original, &mut out);
    assert_eq!(out[16], libc::AF_INET6 as u8);
    // First address attribute: length 20, CTA_IP_V6_SRC.
    assert_eq!(&out[28..32], &[20, 0, 3, 0]);
    assert_eq!(
        &out[32..48],
        &match source {
            IpAddr::V6(v6) => v6.octets(),
            IpAddr::V4(_) => unreachable!(),
        }
    );
}
