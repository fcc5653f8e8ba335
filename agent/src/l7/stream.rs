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
    pub fn advance<'a>(&mut self, seq: u32, payload_len: u32, captured: &'a [u8]) -> Option<Advance<'a>> {
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
