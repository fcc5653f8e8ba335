//! HTTP/1.x head scanner: finds where a request or response head ends and picks out only
//! what the tracker needs on the hot path (request line, status code, Host, body framing,
//! `traceparent`). Header values are not copied or checked byte by byte: they stay in the
//! head's bytes, turned into Hubble's header list only when a record is read.
//!
//! It accepts what `httparse` accepts for the parts it looks at (token method and header
//! names, a UTF-8 target without spaces or controls, `HTTP/1.0` or `HTTP/1.1`, a
//! three-digit status, CRLF or bare LF line ends, leading empty lines skipped), and it
//! refuses a bad byte as soon as it sees one, so garbage is refused before its end
//! arrives, as before.

use std::ops::Range;

use super::trace_context::TRACEPARENT;

/// Headers per head; more is treated as malformed (as the `httparse` limit was).
pub(super) const MAX_HEADERS: usize = 96;

/// What scanning a head gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Scan<H> {
    Complete(H),
    /// Everything so far is valid but the head does not end yet.
    Partial,
    Invalid,
}

/// How a message's body is delimited, from its headers (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Chunked,
    Length(u64),
    BadLength,
}

/// A complete request head; ranges index the scanned bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RequestHead {
    /// Bytes up to and including the empty line.
    pub len: usize,
    pub method: Range<usize>,
    pub target: Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The header lines, empty line excluded.
    pub fields: Range<usize>,
    pub host: Option<Range<usize>>,
    /// The first `traceparent`, as Go's `Header.Get` picks it.
    pub traceparent: Option<Range<usize>>,
    pub framing: Framing,
}

/// A complete response head; ranges index the scanned bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ResponseHead {
    pub len: usize,
    pub minor_version: u8,
    pub code: u16,
    pub fields: Range<usize>,
    pub framing: Framing,
}

/// RFC 9110 token characters (methods, header names; also canonical header keys).
pub(super) static TOKEN: [bool; 256] = {
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

/// Why scanning stopped before a complete head.
enum Stop {
    Partial,
    Invalid,
}

impl<H> From<Stop> for Scan<H> {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Partial => Scan::Partial,
            Stop::Invalid => Scan::Invalid,
        }
    }
}

type Step<T> = Result<T, Stop>;

/// Scans a request head at the start of `bytes`.
pub(super) fn scan_request(bytes: &[u8]) -> Scan<RequestHead> {
    match request(bytes) {
        Ok(head) => Scan::Complete(head),
        Err(stop) => stop.into(),
    }
}

/// Scans a response head at the start of `bytes`.
pub(super) fn scan_response(bytes: &[u8]) -> Scan<ResponseHead> {
    match response(bytes) {
        Ok(head) => Scan::Complete(head),
        Err(stop) => stop.into(),
    }
}

fn request(bytes: &[u8]) -> Step<RequestHead> {
    let mut at = skip_empty_lines(bytes)?;
    let method_start = at;
    at = token(bytes, at, b' ')?;
    let method = method_start..at;
    at += 1;
    let target_start = at;
    // Up to the space before the version; controls and DEL are not part of a target.
    at += bytes[at.min(bytes.len())..]
        .iter()
        .position(|&b| b <= b' ' || b == 0x7f)
        .ok_or(Stop::Partial)?;
    if bytes[at] != b' ' {
        return Err(Stop::Invalid);
    }
    let target = target_start..at;
    if target.is_empty() || std::str::from_utf8(&bytes[target.clone()]).is_err() {
        return Err(Stop::Invalid);
    }
    at += 1;
    let (minor_version, after_version) = version(bytes, at)?;
    at = line_end(bytes, after_version)?;
    let fields = fields(bytes, at)?;
    Ok(RequestHead {
        len: fields.end,
        method,
        target,
        minor_version,
        fields: at..fields.fields_end,
        host: fields.host,
        traceparent: fields.traceparent,
        framing: fields.framing,
    })
}

fn response(bytes: &[u8]) -> Step<ResponseHead> {
    let (minor_version, mut at) = version(bytes, 0)?;
    // One space, then three digits.
    match bytes.get(at) {
        None => return Err(Stop::Partial),
        Some(b' ') => at += 1,
        Some(_) => return Err(Stop::Invalid),
    }
    let mut code = 0u16;
    for _ in 0..3 {
        match bytes.get(at) {
            None => return Err(Stop::Partial),
            Some(digit @ b'0'..=b'9') => code = code * 10 + u16::from(digit - b'0'),
            Some(_) => return Err(Stop::Invalid),
        }
        at += 1;
    }
    at = match bytes.get(at) {
        None => return Err(Stop::Partial),
        // The reason phrase is not shown: only its end matters.
        Some(b' ') => match memchr::memchr(b'\n', &bytes[at..]) {
            Some(newline) => at + newline + 1,
            None => return Err(Stop::Partial),
        },
        Some(_) => line_end(bytes, at)?,
    };
    let fields = fields(bytes, at)?;
    Ok(ResponseHead {
        len: fields.end,
        minor_version,
        code,
        fields: at..fields.fields_end,
        framing: fields.framing,
    })
}

/// Empty lines before a request line are skipped (RFC 9112 §2.2).
fn skip_empty_lines(bytes: &[u8]) -> Step<usize> {
    let mut at = 0;
    loop {
        match bytes.get(at) {
            Some(b'\n') => at += 1,
            Some(b'\r') => match bytes.get(at + 1) {
                Some(b'\n') => at += 2,
                Some(_) => return Err(Stop::Invalid),
                None => return Err(Stop::Partial),
            },
            Some(_) => return Ok(at),
            None => return Err(Stop::Partial),
        }
    }
}

/// A non-empty token from `at` up to `end`; returns where `end` is.
fn token(bytes: &[u8], at: usize, end: u8) -> Step<usize> {
    let rest = &bytes[at.min(bytes.len())..];
    match rest.iter().position(|&b| !TOKEN[usize::from(b)]) {
        None => Err(Stop::Partial),
        Some(len) if len > 0 && rest[len] == end => Ok(at + len),
        Some(_) => Err(Stop::Invalid),
    }
}

/// How many token bytes `bytes` starts with, sixteen at a time: one branch per block
/// instead of one per byte, whose exit at the colon is mispredicted on every line.
fn token_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(block) = bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        let not_token = not_token_bits(block);
        if not_token != 0 {
            return at + not_token.trailing_zeros() as usize;
        }
        at += 16;
    }
    let rest = &bytes[at..];
    at + rest.iter().position(|&b| !TOKEN[usize::from(b)]).unwrap_or(rest.len())
}

/// One bit per byte of `block` that is not a token character (bit `i` for byte `i`).
#[cfg(target_arch = "x86_64")]
fn not_token_bits(block: &[u8; 16]) -> u32 {
    use core::arch::x86_64::{
        _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: `block` is 16 readable bytes and `loadu` has no alignment requirement; the
    // other intrinsics only compute on registers, and SSE2 is part of every x86_64 target.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast());
        let is = |byte: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(byte as i8));
        // Signed compares: bytes from 0x80 are negative, so they fall outside every range here.
        let within = |low: u8, high: u8| {
            _mm_and_si128(
                _mm_cmpgt_epi8(x, _mm_set1_epi8(low as i8 - 1)),
                _mm_cmplt_epi8(x, _mm_set1_epi8(high as i8 + 1)),
            )
        };
        // Visible ASCII less the RFC 9110 delimiters `"(),/:;<=>?@[\]{}`.
        let delimiters = _mm_or_si128(
            _mm_or_si128(
                _mm_or_si128(within(b'(', b')'), within(b':', b'@')),
                _mm_or_si128(within(b'[', b']'), is(b'"')),
            ),
            _mm_or_si128(_mm_or_si128(is(b','), is(b'/')), _mm_or_si128(is(b'{'), is(b'}'))),
        );
        let visible = within(b'!', b'~');
        let token = _mm_and_si128(visible, _mm_cmpeq_epi8(delimiters, _mm_set1_epi8(0)));
        !(_mm_movemask_epi8(token) as u32) & 0xffff
    }
}

/// One bit per byte of `block` that is not a token character (bit `i` for byte `i`).
#[cfg(not(target_arch = "x86_64"))]
fn not_token_bits(block: &[u8; 16]) -> u32 {
    block
        .iter()
        .enumerate()
        .fold(0, |bits, (i, &b)| bits | u32::from(!TOKEN[usize::from(b)]) << i)
}

/// Positions of `\n` in a byte string, found 64 bytes at a time: the header lines of a
/// head are short, and one bit scan per line beats a search call (or a loop) per line.
struct Newlines<'a> {
    bytes: &'a [u8],
    /// Where the block in `mask` starts.
    base: usize,
    /// One bit per `\n` byte of the current block not yet returned.
    mask: u64,
}

impl<'a> Newlines<'a> {
    fn new(bytes: &'a [u8], from: usize) -> Self {
        let base = from.min(bytes.len());
        Self {
            bytes,
            base,
            mask: newline_bits(bytes, base),
        }
    }

    /// The first `\n` at or after `from` (which never goes backwards).
    fn next_from(&mut self, from: usize) -> Option<usize> {
        loop {
            while self.mask == 0 {
                self.base += 64;
                if self.base >= self.bytes.len() {
                    return None;
                }
                self.mask = newline_bits(self.bytes, self.base);
            }
            let at = self.base + self.mask.trailing_zeros() as usize;
            self.mask &= self.mask - 1;
            if at >= from {
                return Some(at);
            }
        }
    }
}

/// One bit per `\n` in the 64 bytes from `at` (bit `i` for `at + i`); none past the end.
fn newline_bits(bytes: &[u8], at: usize) -> u64 {
    let rest = &bytes[at.min(bytes.len())..];
    match rest.first_chunk::<64>() {
        Some(block) => newline_block(block),
        None => {
            let mut block = [0; 64];
            block[..rest.len()].copy_from_slice(rest);
            newline_block(&block)
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn newline_block(block: &[u8; 64]) -> u64 {
    use core::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let mut bits = 0u64;
    for (i, quarter) in block.chunks_exact(16).enumerate() {
        // SAFETY: `quarter` is 16 readable bytes and `loadu` has no alignment requirement;
        // the other intrinsics only compute on registers, and SSE2 is part of every x86_64
        // target.
        let found = unsafe {
            let x = _mm_loadu_si128(quarter.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(b'\n' as i8)))
        };
        bits |= u64::from(found as u16) << (i * 16);
    }
    bits
}

#[cfg(not(target_arch = "x86_64"))]
fn newline_block(block: &[u8; 64]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |bits, (i, &b)| bits | u64::from(b == b'\n') << i)
}

/// `HTTP/1.0` or `HTTP/1.1` at `at`: the minor version and where it ends.
fn version(bytes: &[u8], at: usize) -> Step<(u8, usize)> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let available = &bytes[at.min(bytes.len())..];
    let compared = available.len().min(PREFIX.len());
    if available[..compared] != PREFIX[..compared] {
        return Err(Stop::Invalid);
    }
    match available.get(PREFIX.len()) {
        None => Err(Stop::Partial),
        Some(b'0') => Ok((0, at + PREFIX.len() + 1)),
        Some(b'1') => Ok((1, at + PREFIX.len() + 1)),
        Some(_) => Err(Stop::Invalid),
    }
}

/// CRLF or LF at `at`; returns where the next line starts.
fn line_end(bytes: &[u8], at: usize) -> Step<usize> {
    match bytes.get(at) {
        None => Err(Stop::Partial),
        Some(b'\n') => Ok(at + 1),
        Some(b'\r') => match bytes.get(at + 1) {
            None => Err(Stop::Partial),
            Some(b'\n') => Ok(at + 2),
            Some(_) => Err(Stop::Invalid),
        },
        Some(_) => Err(Stop::Invalid),
    }
}

/// What the header lines gave.
struct Fields {
    /// Where the empty line starts.
    fields_end: usize,
    /// Past the empty line: the head's length.
    end: usize,
    host: Option<Range<usize>>,
    traceparent: Option<Range<usize>>,
    framing: Framing,
}

/// Walks the header lines from `at` to the empty line. Names are checked (tokens, then a
/// colon); only the values the tracker uses are looked at.
fn fields(bytes: &[u8], mut at: usize) -> Step<Fields> {
    let mut found = Fields {
        fields_end: at,
        end: at,
        host: None,
        traceparent: None,
        framing: Framing::None,
    };
    let mut length: Option<u64> = None;
    let mut framing_decided = false;
    let mut count = 0;
    let mut newlines = Newlines::new(bytes, at);
    loop {
        match bytes.get(at) {
            None => return Err(Stop::Partial),
            Some(b'\n') => {
                found.fields_end = at;
                found.end = at + 1;
                break;
            }
            Some(b'\r') => {
                found.fields_end = at;
                found.end = line_end(bytes, at)?;
                break;
            }
            Some(_) => {}
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(Stop::Invalid);
        }
        let Some(line_end) = newlines.next_from(at) else {
            // The line is not complete: refuse a bad name now, wait for the rest otherwise.
            token(bytes, at, b':')?;
            return Err(Stop::Partial);
        };
        // The line end is not a token byte, so the name cannot run past it.
        let name_len = token_len(&bytes[at..]);
        if name_len == 0 || bytes[at + name_len] != b':' {
            return Err(Stop::Invalid);
        }
        let name = &bytes[at..at + name_len];
        let value_start = at + name_len + 1;
        at = line_end + 1;
        // Names are compared by length first: most lines are none of these, and their
        // values are never looked at.
        match name.len() {
            4 if found.host.is_none() && name.eq_ignore_ascii_case(b"host") => {
                found.host = Some(trim(bytes, value_start, line_end));
            }
            11 if found.traceparent.is_none() && name.eq_ignore_ascii_case(TRACEPARENT.as_bytes()) => {
                found.traceparent = Some(trim(bytes, value_start, line_end));
            }
            17 if !framing_decided && name.eq_ignore_ascii_case(b"transfer-encoding") => {
                let value = trim(bytes, value_start, line_end);
                let chunked_last = bytes[value]
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                if chunked_last {
                    found.framing = Framing::Chunked;
                    framing_decided = true;
                }
            }
            14 if !framing_decided && name.eq_ignore_ascii_case(b"content-length") => {
                match (parse_length(&bytes[trim(bytes, value_start, line_end)]), length) {
                    (Some(value), None) => length = Some(value),
                    (Some(value), Some(previous)) if value == previous => {}
                    _ => {
                        found.framing = Framing::BadLength;
                        framing_decided = true;
                    }
                }
            }
            _ => {}
        }
    }
    if !framing_decided && let Some(length) = length {
        found.framing = Framing::Length(length);
    }
    Ok(found)
}

/// The value between the colon and the line end, without the blanks around it (and the
/// CR of a CRLF), as `httparse` trimmed it.
fn trim(bytes: &[u8], mut start: usize, mut end: usize) -> Range<usize> {
    while start < end && matches!(bytes[start], b' ' | b'\t') {
        start += 1;
    }
    while end > start && matches!(bytes[end - 1], b' ' | b'\t' | b'\r') {
        end -= 1;
    }
    start..end
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        // `str::parse` also took a leading `+`.
        return digits
            .strip_prefix(b"+")
            .filter(|rest| !rest.is_empty() && rest.len() <= 19 && rest.iter().all(u8::is_ascii_digit))
            .and_then(|rest| std::str::from_utf8(rest).ok()?.parse().ok());
    }
    digits.iter().try_fold(0u64, |total, digit| {
        total.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The header lines of a head (`fields` range of a scan), as (name, value) pairs with the
/// values trimmed as the scan trims them. Only ever run over bytes a scan accepted.
pub(super) fn field_lines(lines: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = lines;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..line_end];
        rest = rest.get(line_end + 1..).unwrap_or_default();
        let colon = memchr::memchr(b':', line).unwrap_or(line.len());
        let value = trim(line, (colon + 1).min(line.len()), line.len());
        Some((&line[..colon], &line[value]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_of(bytes: &[u8]) -> RequestHead {
        match scan_request(bytes) {
            Scan::Complete(head) => head,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    #[test]
    fn a_request_head_gives_its_line_host_framing_and_trace() {
        let bytes = b"\r\nPOST /a?b HTTP/1.0\r\nhost:  h:80 \r\nContent-Length: 12\nTraceParent: t\r\n\r\nbody";
        let head = request_of(bytes);
        assert_eq!(&bytes[head.method.clone()], b"POST");
        assert_eq!(&bytes[head.target.clone()], b"/a?b");
        assert_eq!(head.minor_version, 0);
        assert_eq!(head.host.map(|r| &bytes[r]), Some(&b"h:80"[..]));
        assert_eq!(head.traceparent.map(|r| &bytes[r]), Some(&b"t"[..]));
        assert_eq!(head.framing, Framing::Length(12));
        assert_eq!(&bytes[head.len..], b"body");
        let fields: Vec<_> = field_lines(&bytes[head.fields]).collect();
        assert_eq!(
            fields,
            [
                (&b"host"[..], &b"h:80"[..]),
                (b"Content-Length", b"12"),
                (b"TraceParent", b"t")
            ]
        );
    }

    #[test]
    fn a_response_head_gives_its_status_and_framing() {
        let ok = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        match scan_response(ok) {
            Scan::Complete(head) => {
                assert_eq!((head.code, head.minor_version, head.len), (404, 1, ok.len()));
                assert_eq!(head.framing, Framing::Chunked);
            }
            other => panic!("{other:?}"),
        }
        match scan_response(b"HTTP/1.1 204\n\n") {
            Scan::Complete(head) => assert_eq!((head.code, head.framing, head.fields.len()), (204, Framing::None, 0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_prefix_of_a_valid_head_is_partial() {
        let bytes = b"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
        for cut in 0..bytes.len() {
            assert_eq!(scan_request(&bytes[..cut]), Scan::Partial, "cut at {cut}");
        }
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        for cut in 0..bytes.len() {
            assert_eq!(scan_response(&bytes[..cut]), Scan::Partial, "cut at {cut}");
        }
    }

    #[test]
    fn bad_bytes_are_refused_before_the_head_ends() {
        for bad in [
            &b"\x16\x03\x01"[..],
            b"GET  / HTTP/1.1",
            b"GET /\x01 HTTP/1.1",
            b"GET / HTTP/2.0\r\n",
            b"GET / HTTP/1.1\rX",
            b"GET / HTTP/1.1\r\nBad Name: x",
            b"GET / HTTP/1.1\r\n: x",
            b"GET / HTTP/1.1\r\n folded",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(scan_request(bad), Scan::Invalid, "{bad:?}");
        }
        for bad in [&b"HTTP/1.1 20x"[..], b"HTTP/1.1  200", b"HTTP/1.1 200x", b"HTTP/3"] {
            assert_eq!(scan_response(bad), Scan::Invalid, "{bad:?}");
        }
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(scan_request(many.as_bytes()), Scan::Invalid);
    }

    #[test]
    fn newlines_are_found_exactly_next_to_every_other_byte_value() {
        let mut bytes: Vec<u8> = (0..=255u8).flat_map(|b| [b, b'\n', b, b, 0x8a, 0x0b]).collect();
        bytes.extend_from_slice(b"\n\n\x09\n");
        for from in [0, 1, 7, 8, 9, 100] {
            let expected: Vec<usize> = (from..bytes.len()).filter(|&at| bytes[at] == b'\n').collect();
            let mut newlines = Newlines::new(&bytes, from);
            let found: Vec<usize> = std::iter::from_fn(|| newlines.next_from(from)).collect();
            assert_eq!(found, expected, "from {from}");
        }
    }

    #[test]
    fn token_runs_end_at_the_first_non_token_byte_wherever_it_falls() {
        for stop in 0..=255u8 {
            for len in 0..20 {
                let mut bytes = b"Abc-Def_ghi.jkl~mno!pq".to_vec();
                bytes.truncate(len);
                bytes.push(stop);
                bytes.extend_from_slice(b"tail");
                let expected = bytes
                    .iter()
                    .position(|&b| !TOKEN[usize::from(b)])
                    .unwrap_or(bytes.len());
                assert_eq!(token_len(&bytes), expected, "stop {stop:#x} after {len}");
            }
        }
        assert_eq!(token_len(b"all-token-bytes-here"), 20);
    }

    #[test]
    fn the_block_token_check_agrees_with_the_table_for_every_byte_in_every_lane() {
        for byte in 0..=255u8 {
            for lane in 0..16 {
                let mut block = *b"abcdefghijklmnop";
                block[lane] = byte;
                let expected = u32::from(!TOKEN[usize::from(byte)]) << lane;
                assert_eq!(not_token_bits(&block), expected, "byte {byte:#x} in lane {lane}");
            }
        }
    }

    #[test]
    fn conflicting_or_unreadable_lengths_are_bad_and_chunked_wins_when_first() {
        let framing = |head: &str| match scan_request(head.as_bytes()) {
            Scan::Complete(head) => head.framing,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            framing("GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
            Framing::Length(3)
        );
        assert_eq!(
            framing("GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Framing::BadLength
        );
        assert_eq!(
            framing("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Framing::BadLength
        );
        assert_eq!(
            framing("GET / HTTP/1.1\r\nContent-Length: +7\r\n\r\n"),
            Framing::Length(7)
        );
        assert_eq!(
            framing("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing("GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Framing::None
        );
    }
}
