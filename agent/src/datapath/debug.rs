//! The datapath's debug events (`hubble observe debug-events`): programs attached
//! to and detached from interfaces, records that did not decode, and kernel
//! ring-buffer losses. Off unless `--debug-events`; rate-limited so a stream of
//! undecodable records cannot flood the ring, with what was held back counted in
//! the next event that goes out.

use std::time::Instant;

use pbjson_types::{Int32Value, UInt32Value};
use sightline_proto::Timestamp;
use sightline_proto::flow::{DebugEvent, DebugEventType};

use crate::event::{Event, EventSink};

/// Sustained events per second.
pub(crate) const RATE_PER_SECOND: u32 = 10;
/// Events that may go out at once after a quiet spell.
pub(crate) const BURST: u32 = 50;

/// One debug event before it is stamped.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DebugNote {
    pub message: String,
    /// The interface concerned, as `arg1`.
    pub ifindex: Option<u32>,
    pub cpu: Option<i32>,
}

/// Emits debug events through a token bucket.
#[derive(Debug)]
pub(crate) struct DebugEvents {
    enabled: bool,
    tokens: f64,
    refilled: Instant,
    held_back: u64,
}

impl DebugEvents {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            tokens: f64::from(BURST),
            refilled: Instant::now(),
            held_back: 0,
        }
    }

    /// Publishes `note` if debug events are on and the rate allows.
    pub(crate) fn emit(&mut self, sink: &mut dyn EventSink, note: DebugNote) {
        self.emit_at(sink, note, Instant::now());
    }

    fn emit_at(&mut self, sink: &mut dyn EventSink, mut note: DebugNote, now: Instant) {
        if !self.enabled {
            return;
        }
        let elapsed = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * f64::from(RATE_PER_SECOND)).min(f64::from(BURST));
        if self.tokens < 1.0 {
            self.held_back += 1;
            return;
        }
        self.tokens -= 1.0;
        if self.held_back > 0 {
            note.message = format!(
                "{} ({} debug events held back by the rate limit)",
                note.message, self.held_back
            );
            self.held_back = 0;
        }
        sink.publish(Event::Debug {
            time: Timestamp::now(),
            event: Box::new(DebugEvent {
                r#type: DebugEventType::DbgGeneric as i32,
                arg1: note.ifindex.map(|value| UInt32Value { value }),
                cpu: note.cpu.map(|value| Int32Value { value }),
                message: note.message,
                ..DebugEvent::default()
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    /// How long the bucket takes to fill from empty.
    fn refill_time() -> Duration {
        Duration::from_secs_f64(f64::from(BURST) / f64::from(RATE_PER_SECOND))
    }

    #[derive(Default)]
    struct Collect(Vec<Event>);

    impl EventSink for Collect {
        fn publish(&mut self, event: Event) {
            self.0.push(event);
        }
    }

    fn messages(sink: &Collect) -> Vec<String> {
        sink.0
            .iter()
            .map(|event| match event {
                Event::Debug { event, .. } => event.message.clone(),
                other => panic!("not a debug event: {other:?}"),
            })
            .collect()
    }

    fn note(text: &str) -> DebugNote {
        DebugNote {
            message: text.into(),
            ifindex: Some(7),
            cpu: None,
        }
    }

    #[test]
    fn nothing_unless_enabled() {
        let mut sink = Collect::default();
        DebugEvents::new(false).emit(&mut sink, note("attached"));
        assert!(sink.0.is_empty());
    }

    #[test]
    fn a_flood_is_cut_to_the_burst_and_what_was_held_back_is_counted() {
        let mut sink = Collect::default();
        let mut debug = DebugEvents::new(true);
        let start = Instant::now();
        for i in 0..(BURST + 30) {
            debug.emit_at(&mut sink, note(&format!("bad record {i}")), start);
        }
        assert_eq!(sink.0.len(), BURST as usize);
        // A second later the bucket has room for RATE_PER_SECOND more.
        let later = start + Duration::from_secs(1);
        for i in 0..RATE_PER_SECOND + 5 {
            debug.emit_at(&mut sink, note(&format!("late {i}")), later);
        }
        let got = messages(&sink);
        assert_eq!(got.len(), (BURST + RATE_PER_SECOND) as usize);
        assert_eq!(
            got[BURST as usize],
            "late 0 (30 debug events held back by the rate limit)"
        );
        let Event::Debug { event, .. } = &sink.0[0] else {
            unreachable!()
        };
        assert_eq!(event.r#type, DebugEventType::DbgGeneric as i32);
        assert_eq!(event.arg1, Some(UInt32Value { value: 7 }));
        assert!(refill_time() >= Duration::from_secs(1));
    }
}
