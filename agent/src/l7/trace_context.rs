//! The W3C `traceparent` header (`version-traceid-parentid-flags`) read as Hubble reads it
//! for `flow.trace_context.parent.trace_id`: Hubble hands the header to OpenTelemetry Go's
//! TraceContext propagator and keeps the trace id only when the propagator accepts the
//! whole value. Its rules: every part is lower-case hex of its exact length (upper case is
//! refused), version `ff` is invalid, version `00` has exactly four parts and no flag
//! above 2, and neither the trace id nor the parent id may be all zeros.

/// The header's name as HTTP/2 carries it (HTTP/1 compares case-insensitively).
pub(crate) const TRACEPARENT: &str = "traceparent";

/// Versions above this are invalid (`ff` is reserved).
const MAX_VERSION: u8 = 254;

/// A W3C trace id as text: 32 lower-case hex digits, kept inline so a record carries it
/// without an allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 32]);

impl std::ops::Deref for TraceId {
    type Target = str;

    fn deref(&self) -> &str {
        // Built only from validated lower-case hex, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// The trace id (32 lower-case hex digits) of a valid `traceparent` value.
pub(crate) fn trace_id(value: &[u8]) -> Option<TraceId> {
    // Go's header parsing drops the blanks around a value.
    let value = value.trim_ascii();
    canonical(value).unwrap_or_else(|| general(value))
}

/// Any shape: the parts split at each `-`.
fn general(mut rest: &[u8]) -> Option<TraceId> {
    let version = hex_part::<1>(&mut rest);
    let trace_id_text = part(&mut rest);
    let parent_id = hex_part::<8>(&mut rest);
    let flags = hex_part::<1>(&mut rest);
    valid(version, trace_id_text, parent_id, flags, !rest.is_empty())
}

/// The value as every version-00 sender writes it (55 bytes, dashes at fixed places),
/// read without searching for the dashes; `None` when it has another shape, for the
/// general reading. A dash anywhere else fails a hex part here as it fails a part's
/// length there, so both readings agree.
fn canonical(value: &[u8]) -> Option<Option<TraceId>> {
    let value: &[u8; 55] = value.try_into().ok()?;
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    Some(valid(
        decode_hex::<1>(&value[..2]),
        &value[3..35],
        decode_hex::<8>(&value[36..52]),
        decode_hex::<1>(&value[53..]),
        false,
    ))
}

/// The propagator's rules over the decoded parts; `more` says parts follow the flags.
fn valid(
    version: Option<[u8; 1]>,
    trace_id_text: &[u8],
    parent_id: Option<[u8; 8]>,
    flags: Option<[u8; 1]>,
    more: bool,
) -> Option<TraceId> {
    let version = version?[0];
    let trace_id = decode_hex::<16>(trace_id_text)?;
    let (parent_id, flags) = (parent_id?, flags?[0]);
    if version > MAX_VERSION || (version == 0 && (more || flags > 2)) {
        return None;
    }
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    trace_id_text.try_into().ok().map(TraceId)
}

/// The text up to the next `-` (all of it when there is none); `rest` moves past the `-`.
fn part<'v>(rest: &mut &'v [u8]) -> &'v [u8] {
    match rest.iter().position(|&b| b == b'-') {
        Some(dash) => {
            let (part, after) = rest.split_at(dash);
            *rest = &after[1..];
            part
        }
        None => std::mem::take(rest),
    }
}

fn hex_part<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    decode_hex(part(rest))
}

/// Lower-case hex digit values; every other byte has a high nibble set.
static HEX: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut digit = 0;
    while digit < 16 {
        table[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};

/// Exactly `2 * N` lower-case hex digits. One table lookup per digit and a single check at
/// the end: a trace id is 32 digits, and a branch per digit cost more than the lookups.
fn decode_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        seen |= high | low;
        *byte = high << 4 | low;
    }
    (seen & 0xf0 == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn id(value: &str) -> Option<String> {
        trace_id(value.as_bytes()).map(|id| id.to_string())
    }

    #[test]
    fn a_valid_header_gives_its_trace_id() {
        assert_eq!(id(VALID).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(
            id(&format!(" {VALID}\t")).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // Unsampled and later versions with more parts are fine.
        assert!(id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").is_some());
        assert!(id("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra").is_some());
    }

    #[test]
    fn all_zero_ids_are_ignored() {
        assert_eq!(id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), None);
    }

    #[test]
    fn parts_of_the_wrong_length_are_ignored() {
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"), None);
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e47360-00f067aa0ba902b7-01"), None);
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"), None);
        assert_eq!(id("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"), None);
        assert_eq!(id("not-an-actual-traceparent"), None);
        assert_eq!(id(""), None);
    }

    #[test]
    fn upper_case_hex_is_refused_as_opentelemetry_refuses_it() {
        assert_eq!(id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"), None);
    }

    #[test]
    fn the_fixed_layout_reading_agrees_with_the_general_one_on_every_one_byte_change() {
        let valid = VALID.as_bytes();
        for at in 0..valid.len() {
            for byte in 0..=u8::MAX {
                let mut value = valid.to_vec();
                value[at] = byte;
                assert_eq!(
                    trace_id(&value),
                    general(&value),
                    "{:?}",
                    String::from_utf8_lossy(&value)
                );
            }
        }
        for version in ["00", "01", "fe", "ff"] {
            for flags in ["00", "02", "03", "ff"] {
                let value = format!("{version}{}{flags}", &VALID[2..53]);
                assert_eq!(trace_id(value.as_bytes()), general(value.as_bytes()), "{value}");
            }
        }
    }

    #[test]
    fn version_rules_follow_the_propagator() {
        assert_eq!(id("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(id(&format!("{VALID}-extra")), None, "version 00 has four parts");
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"), None);
        assert_eq!(id("0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
    }
}
