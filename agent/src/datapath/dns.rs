//! A small, allocation-light DNS message parser (RFC 1035) for messages copied out of
//! packets. It reads only what Hubble's `flow.DNS` carries: the question, and the A,
//! AAAA and CNAME answers with their TTLs. Malformed input gives an error, never a panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// Why a DNS message was not parsed; offsets count from the start of the message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DnsError {
    /// The message ends (or the capture cut it) before the field starting at this offset.
    #[error("DNS message truncated at byte {0}")]
    Truncated(usize),
    /// Compression pointers from this offset chain more than 16 times, as a loop does.
    #[error("DNS name compression loop at byte {0}")]
    CompressionLoop(usize),
    /// A name exceeds RFC 1035's 255-byte limit.
    #[error("DNS name longer than 255 bytes")]
    NameTooLong,
    /// `QDCOUNT` is zero: Hubble's `flow.DNS.query` would have nothing to show.
    #[error("DNS message has no question")]
    NoQuestion,
}

/// The parts of a DNS message Hubble reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsMessage {
    /// The header's ID, which pairs an answer with its query.
    pub id: u16,
    /// The header's QR bit: set on answers.
    pub is_response: bool,
    /// The header's 4-bit response code (0 NOERROR, 3 NXDOMAIN; [`rcode_name`] names it).
    pub rcode: u8,
    /// First question's name, fully qualified with the trailing dot ("example.com.").
    pub query: String,
    /// Type names of every question ("A", "AAAA"), in message order (`flow.DNS.qtypes`).
    pub qtypes: Vec<&'static str>,
    /// Addresses of the A and AAAA answers as text, in message order (`flow.DNS.ips`).
    pub ips: Vec<String>,
    /// Smallest TTL among the answers (0 without answers).
    pub ttl: u32,
    /// Targets of the CNAME answers, fully qualified (`flow.DNS.cnames`).
    pub cnames: Vec<String>,
    /// Type names of every answer record, in message order (`flow.DNS.rrtypes`).
    pub rrtypes: Vec<&'static str>,
}

const HEADER_LEN: usize = 12;
const MAX_POINTER_HOPS: usize = 16;
const MAX_NAME_LEN: usize = 255;

/// Parses one DNS message (UDP payload, or one message of a TCP stream without its
/// length prefix). Answers of types other than A, AAAA and CNAME are counted in
/// `rrtypes` and otherwise skipped.
pub fn parse(message: &[u8]) -> Result<DnsMessage, DnsError> {
    let header = message.get(..HEADER_LEN).ok_or(DnsError::Truncated(message.len()))?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let is_response = header[2] & 0x80 != 0;
    let rcode = header[3] & 0x0f;
    let questions = u16::from_be_bytes([header[4], header[5]]);
    let answers = u16::from_be_bytes([header[6], header[7]]);
    if questions == 0 {
        return Err(DnsError::NoQuestion);
    }
    let mut out = DnsMessage {
        id,
        is_response,
        rcode,
        ..Default::default()
    };
    let mut offset = HEADER_LEN;
    for index in 0..questions {
        let (name, next) = read_name(message, offset)?;
        let fixed = message.get(next..next + 4).ok_or(DnsError::Truncated(next))?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        if index == 0 {
            out.query = name;
        }
        out.qtypes.push(type_name(qtype));
        offset = next + 4;
    }
    let mut min_ttl: Option<u32> = None;
    for _ in 0..answers {
        let next = skip_name(message, offset)?;
        let fixed = message.get(next..next + 10).ok_or(DnsError::Truncated(next))?;
        let rrtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlength = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata_start = next + 10;
        let rdata = message
            .get(rdata_start..rdata_start + rdlength)
            .ok_or(DnsError::Truncated(rdata_start))?;
        match (rrtype, rdata.len()) {
            (1, 4) => out
                .ips
                .push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string()),
            (28, 16) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(rdata);
                out.ips.push(Ipv6Addr::from(octets).to_string());
            }
            (5, _) => out.cnames.push(read_name(message, rdata_start)?.0),
            _ => {}
        }
        out.rrtypes.push(type_name(rrtype));
        min_ttl = Some(min_ttl.map_or(ttl, |m| m.min(ttl)));
        offset = rdata_start + rdlength;
    }
    out.ttl = min_ttl.unwrap_or(0);
    Ok(out)
}

/// Reads a possibly compressed name; returns it and the offset just after it in place.
fn read_name(message: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::with_capacity(32);
    let mut offset = start;
    let mut end_in_place = None;
    let mut hops = 0;
    loop {
        let len = *message.get(offset).ok_or(DnsError::Truncated(offset))? as usize;
        if len & 0xc0 == 0xc0 {
            let low = *message.get(offset + 1).ok_or(DnsError::Truncated(offset + 1))? as usize;
            end_in_place.get_or_insert(offset + 2);
            hops += 1;
            if hops > MAX_POINTER_HOPS {
                return Err(DnsError::CompressionLoop(offset));
            }
            offset = ((len & 0x3f) << 8) | low;
            continue;
        }
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Ok((name, end_in_place.unwrap_or(offset + 1)));
        }
        let label = message
            .get(offset + 1..offset + 1 + len)
            .ok_or(DnsError::Truncated(offset + 1))?;
        if name.len() + len + 1 > MAX_NAME_LEN {
            return Err(DnsError::NameTooLong);
        }
        for &byte in label {
            // Hubble prints names as presentation text; keep it printable.
            if byte.is_ascii_graphic() && byte != b'.' {
                name.push(byte as char);
            } else {
                name.push_str(&format!("\\{byte:03}"));
            }
        }
        name.push('.');
        offset += 1 + len;
    }
}

fn skip_name(message: &[u8], start: usize) -> Result<usize, DnsError> {
    let mut offset = start;
    loop {
        let len = *message.get(offset).ok_or(DnsError::Truncated(offset))? as usize;
        if len & 0xc0 == 0xc0 {
            return Ok(offset + 2);
        }
        if len == 0 {
            return Ok(offset + 1);
        }
        offset += 1 + len;
    }
}

/// Record type names as Hubble (miekg/dns) prints them.
pub fn type_name(rrtype: u16) -> &'static str {
    match rrtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => "UNKNOWN",
    }
}

/// Response code names as Hubble prints them in flow summaries; "UNKNOWN" past REFUSED.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "UNKNOWN",
    }
}

/// The DNS messages of a TCP segment's payload, each behind its 2-byte length
/// (RFC 1035 §4.2.2). The first is yielded even when the capture cut it short (the
/// parser reads what it can of it); later ones only when complete.
pub fn tcp_messages(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = payload;
    let mut first = true;
    std::iter::from_fn(move || {
        let (length, body) = match rest {
            [high, low, body @ ..] => (usize::from(u16::from_be_bytes([*high, *low])), body),
            _ => return None,
        };
        if length == 0 || (length > body.len() && !first) {
            return None;
        }
        first = false;
        let (message, after) = body.split_at(length.min(body.len()));
        rest = after;
        Some(message)
    })
}

/// "DNS Query example.com. A" / "DNS Answer \"10.0.0.7\" TTL: 30 (Proxy example.com. A)".
pub fn summary(message: &DnsMessage) -> String {
    let qtypes = message.qtypes.join(",");
    if !message.is_response {
        return format!("DNS Query {} {}", message.query, qtypes);
    }
    if message.rcode != 0 {
        return format!(
            "DNS Answer RCode: {} TTL: {} (Proxy {} {})",
            rcode_name(message.rcode),
            message.ttl,
            message.query,
            qtypes
        );
    }
    let mut answer = message.ips.join(",");
    if answer.is_empty() {
        answer = message.cnames.join(",");
    }
    format!(
        "DNS Answer \"{answer}\" TTL: {} (Proxy {} {})",
        message.ttl, message.query, qtypes
    )
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
