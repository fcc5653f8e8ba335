//! JSON text pieces exactly as Hubble's exporter prints them: Go's `json.Encoder`
//! over protojson. Strings escape what protojson escapes (quote, backslash,
//! control characters with the short forms `\b \f \n \r \t`, the rest as
//! `\u00xx`) plus what the encoder adds (`<`, `>`, `&`, U+2028, U+2029).
//! Timestamps are RFC 3339 in UTC with `Z` and 0, 3, 6 or 9 fractional digits.

use sightline_proto::Timestamp;

/// Whether a byte of a UTF-8 string needs a look before it is copied: it starts an
/// escape (`<0x20 " \ < > &`) or is the first byte of U+2028/U+2029 (0xE2).
const fn needs_escape_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[0xE2] = true;
    table
}

static NEEDS_ESCAPE: [bool; 256] = needs_escape_table();
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `text` as a quoted JSON string.
pub(crate) fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    string_body(out, text);
    out.push(b'"');
}

/// Appends `text` escaped, without quotes.
pub(crate) fn string_body(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if !NEEDS_ESCAPE[byte as usize] {
            i += 1;
            continue;
        }
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            b'&' => b"\\u0026",
            0xE2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) => {
                out.extend_from_slice(&bytes[copied..i]);
                out.extend_from_slice(if bytes[i + 2] == 0xA8 { b"\\u2028" } else { b"\\u2029" });
                i += 3;
                copied = i;
                continue;
            }
            0xE2 => {
                i += 1;
                continue;
            }
            control => {
                out.extend_from_slice(&bytes[copied..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(control >> 4) as usize]);
                out.push(HEX[(control & 0xf) as usize]);
                i += 1;
                copied = i;
                continue;
            }
        };
        out.extend_from_slice(&bytes[copied..i]);
        out.extend_from_slice(escape);
        i += 1;
        copied = i;
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// Re-escapes what serde_json leaves as it is but Go's encoder escapes, in
/// `out[start..]` (JSON text that serde_json wrote). These characters only occur
/// inside strings, so no structure changes.
pub(crate) fn escape_html_from(out: &mut Vec<u8>, start: usize) {
    let tail = &out[start..];
    let special = |b: &u8| matches!(b, b'<' | b'>' | b'&' | 0xE2);
    if !tail.iter().any(special) {
        return;
    }
    let tail = out.split_off(start);
    let mut i = 0;
    while i < tail.len() {
        match tail[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if tail.get(i + 1) == Some(&0x80) && matches!(tail.get(i + 2), Some(0xA8 | 0xA9)) => {
                out.extend_from_slice(if tail[i + 2] == 0xA8 { b"\\u2028" } else { b"\\u2029" });
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
}

pub(crate) fn uint(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A 64-bit integer as protojson writes it: a decimal string.
pub(crate) fn quoted_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.push(b'"');
    uint(out, value);
    out.push(b'"');
}

pub(crate) fn bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// Protojson's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// The longest timestamp text with its quotes: `"9999-12-31T23:59:59.999999999Z"`.
pub(crate) const TIMESTAMP_MAX: usize = 32;

/// A quoted timestamp on the stack, written once and copied where a line needs it.
#[derive(Clone, Copy)]
pub(crate) struct TimestampText {
    bytes: [u8; TIMESTAMP_MAX],
    len: usize,
}

impl TimestampText {
    /// None outside protojson's range (the reference serializer refuses those too).
    pub(crate) fn new(time: Timestamp) -> Option<Self> {
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&time.seconds) || !(0..1_000_000_000).contains(&time.nanos) {
            return None;
        }
        let days = time.seconds.div_euclid(86_400);
        let of_day = time.seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut text = Self {
            bytes: [0; TIMESTAMP_MAX],
            len: 0,
        };
        text.push(b'"');
        text.digits(year as u32, 4);
        text.push(b'-');
        text.digits(month, 2);
        text.push(b'-');
        text.digits(day, 2);
        text.push(b'T');
        text.digits((of_day / 3600) as u32, 2);
        text.push(b':');
        text.digits((of_day / 60 % 60) as u32, 2);
        text.push(b':');
        text.digits((of_day % 60) as u32, 2);
        let nanos = time.nanos as u32;
        if nanos != 0 {
            text.push(b'.');
            if nanos.is_multiple_of(1_000_000) {
                text.digits(nanos / 1_000_000, 3);
            } else if nanos.is_multiple_of(1_000) {
                text.digits(nanos / 1_000, 6);
            } else {
                text.digits(nanos, 9);
            }
        }
        text.push(b'Z');
        text.push(b'"');
        Some(text)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// `value` zero-padded to `width` digits.
    fn digits(&mut self, mut value: u32, width: usize) {
        for slot in self.bytes[self.len..self.len + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }
}

/// Year, month, day of a day count since 1970-01-01 in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_as_gos_encoder_does() {
        assert_eq!(escaped("plain"), r#""plain""#);
        assert_eq!(escaped("a<b>&\"\\"), r#""a\u003cb\u003e\u0026\"\\""#);
        assert_eq!(escaped("\n\r\t\u{8}\u{c}\u{1}\u{1f}"), r#""\n\r\t\b\f\u0001\u001f""#);
        assert_eq!(escaped("x\u{2028}y\u{2029}z€"), r#""x\u2028y\u2029z€""#);
    }

    #[test]
    fn serde_text_gets_the_same_html_escapes() {
        let mut out = br#"{"a":"#.to_vec();
        let start = out.len();
        out.extend_from_slice(serde_json::to_string("<&>\u{2028}é").unwrap().as_bytes());
        escape_html_from(&mut out, start);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":"\u003c\u0026\u003e\u2028é""#);
    }

    proptest! {
        /// Every string reads back as itself and matches serde_json's text once
        /// Go's extra escapes are applied to the latter.
        #[test]
        fn strings_round_trip(text in any::<String>()) {
            let ours = escaped(&text);
            prop_assert_eq!(serde_json::from_str::<String>(&ours).unwrap(), text.clone());
            let mut reference = serde_json::to_vec(&text).unwrap();
            escape_html_from(&mut reference, 0);
            prop_assert_eq!(ours.as_bytes(), &reference[..]);
        }

        /// Timestamps print as the proto crate's (chrono-based) serializer prints them.
        #[test]
        fn timestamps_match_the_reference(
            seconds in MIN_SECONDS..=MAX_SECONDS,
            nanos in prop_oneof![Just(0), (0..1000i32).prop_map(|m| m * 1_000_000), (0..1_000_000i32).prop_map(|u| u * 1000), 0..1_000_000_000i32],
        ) {
            let time = Timestamp { seconds, nanos };
            let ours = TimestampText::new(time).unwrap();
            prop_assert_eq!(std::str::from_utf8(ours.as_bytes()).unwrap(), serde_json::to_string(&time).unwrap());
        }
    }

    #[test]
    fn timestamps_outside_protojsons_range_are_refused() {
        assert!(
            TimestampText::new(Timestamp {
                seconds: MAX_SECONDS + 1,
                nanos: 0
            })
            .is_none()
        );
        assert!(TimestampText::new(Timestamp { seconds: 0, nanos: -1 }).is_none());
        assert!(
            TimestampText::new(Timestamp {
                seconds: 0,
                nanos: 1_000_000_000
            })
            .is_none()
        );
        let edge = TimestampText::new(Timestamp {
            seconds: MIN_SECONDS,
            nanos: 0,
        })
        .unwrap();
        assert_eq!(edge.as_bytes(), br#""0001-01-01T00:00:00Z""#);
    }
}
