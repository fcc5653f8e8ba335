//! Placeholder until the parser lands: consumes nothing.

use super::tracker::{Direction, ParseContext, StreamParser};

#[derive(Default)]
pub(crate) struct Http1Parser;

impl StreamParser for Http1Parser {
    fn data(&mut self, _cx: &mut ParseContext<'_>, _direction: Direction, _bytes: &[u8], _timestamp_ns: u64) {}
    fn gap(&mut self, _cx: &mut ParseContext<'_>, _direction: Direction, _len: u32) {}
    fn close(&mut self, _cx: &mut ParseContext<'_>) {}
}
