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
    let mut rest = value.trim_ascii();
    let version = hex_part::<1>(&mut rest)?[0];
    if version > MAX_VERSION {
        return None;
    }
    let trace_id_text = part(&mut rest);
    let trace_id = decode_hex::<16>(trace_id_text)?;
    let parent_id = hex_part::<8>(&mut rest)?;
    let flags = hex_part::<1>(&mut rest)?[0];
    if version == 0 && (!rest.is_empty() || flags > 2) {
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

/// Exactly `2 * N` lower-case hex digits.
fn decode_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
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
    fn version_rules_follow_the_propagator() {
        assert_eq!(id("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(id(&format!("{VALID}-extra")), None, "version 00 has four parts");
        assert_eq!(id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"), None);
        assert_eq!(id("0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
    }
}
