//! One direction of a TCP connection as a byte stream: segments seen twice (two veths on
//! one node, retransmissions) are dropped by sequence range, and bytes that were never
//! captured (the capture keeps only the first bytes of each segment, or a segment was
//! lost) become explicit gaps the parsers can skip over or resynchronise after.

/// What one segment adds to the stream, in order: unseen bytes before it, the new
/// captured bytes, then the uncaptured remainder of the segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Advance<'a> {
    pub gap_before: u32,
    pub data: &'a [u8],
    pub gap_after: u32,
}

/// Larger jumps than this are not a lost segment but a stream we cannot follow (or a
/// stale segment from long ago); they restart the stream at the new position.
const MAX_PLAUSIBLE_GAP: u32 = 1 << 30;

#[derive(Debug, Default)]
pub(crate) struct StreamCursor {
    next_seq: Option<u32>,
}

impl StreamCursor {
    /// Places a segment in the stream. `None` when everything in it was seen before.
    pub(super) fn advance<'a>(&mut self, seq: u32, payload_len: u32, captured: &'a [u8]) -> Option<Advance<'a>> {
        // The datapath promises `captured` is a prefix of the payload; trust only that much.
        let captured = &captured[..captured.len().min(payload_len as usize)];
        let end = seq.wrapping_add(payload_len);
        let Some(next) = self.next_seq else {
            self.next_seq = Some(end);
            return Some(Advance {
                gap_before: 0,
                data: captured,
                gap_after: payload_len - captured.len() as u32,
            });
        };
        let ahead = seq.wrapping_sub(next);
        if ahead == 0 || (ahead < MAX_PLAUSIBLE_GAP) {
            self.next_seq = Some(end);
            return Some(Advance {
                gap_before: ahead,
                data: captured,
                gap_after: payload_len - captured.len() as u32,
            });
        }
        // The segment starts before the stream position: keep only what lies past it.
        let behind = next.wrapping_sub(seq);
        if behind >= MAX_PLAUSIBLE_GAP {
            self.next_seq = Some(end);
            return Some(Advance {
                gap_before: MAX_PLAUSIBLE_GAP,
                data: captured,
                gap_after: payload_len - captured.len() as u32,
            });
        }
        if behind >= payload_len {
            return None;
        }
        self.next_seq = Some(end);
        let skip = (behind as usize).min(captured.len());
        let data = &captured[skip..];
        Some(Advance {
            gap_before: 0,
            data,
            gap_after: payload_len - behind - data.len() as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_and_overlaps_trimmed() {
        let mut cursor = StreamCursor::default();
        assert_eq!(
            cursor.advance(100, 4, b"abcd"),
            Some(Advance {
                gap_before: 0,
                data: b"abcd",
                gap_after: 0
            })
        );
        assert_eq!(cursor.advance(100, 4, b"abcd"), None);
        assert_eq!(
            cursor.advance(102, 4, b"cdef"),
            Some(Advance {
                gap_before: 0,
                data: b"ef",
                gap_after: 0
            })
        );
    }

    #[test]
    fn unseen_and_uncaptured_bytes_become_gaps_across_sequence_wraparound() {
        let mut cursor = StreamCursor::default();
        let start = u32::MAX - 1;
        assert_eq!(
            cursor.advance(start, 10, b"ab"),
            Some(Advance {
                gap_before: 0,
                data: b"ab",
                gap_after: 8
            })
        );
        // 8 bytes past the wrap: the next expected sequence number; 5 more were lost.
        let next = start.wrapping_add(10);
        assert_eq!(
            cursor.advance(next.wrapping_add(5), 3, b"xyz"),
            Some(Advance {
                gap_before: 5,
                data: b"xyz",
                gap_after: 0
            })
        );
    }

    #[test]
    fn a_retransmission_overlapping_an_uncaptured_tail_adds_only_new_bytes() {
        let mut cursor = StreamCursor::default();
        cursor.advance(0, 10, b"0123");
        assert_eq!(
            cursor.advance(8, 6, b"89abcd"),
            Some(Advance {
                gap_before: 0,
                data: b"abcd",
                gap_after: 0
            })
        );
    }
}
