//! Property test: a follow reader of the observer ring that the writer laps.
//!
//! Records are shaped as the datapath makes them (kernel `FlowEvent`s through the
//! decoder, and the reader's perf-buffer `LostEvent`s). Whatever the interleaving of
//! writes and reads, the follower sees the events in write order without
//! duplicates, never an event after it was overwritten, and every gap as ring
//! losses of exactly the missed count (docs/observer.md, "Ring losses are never
//! dropped"): with `--lost-event-send-interval 0` reported at once, before the
//! first event after the gap, with a long interval in one aggregated report when
//! the follower catches up.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use proptest::prelude::*;
use sightline_agent::datapath::decode::{Decoder, InterfaceInfo, InterfaceRole};
use sightline_agent::datapath::drop_reason::DropReasonNames;
use sightline_agent::event::{Event, EventSink};
use sightline_agent::observer::cursor::{Cursor, Item, Kind, Query};
use sightline_agent::observer::filter::FilterSet;
use sightline_agent::observer::ring::{Ring, ring};
use sightline_agent::observer::sink::{ObserverStats, RingSink};
use sightline_bpf_common::{FlowEvent, IPPROTO_TCP, hook, kind, tcp_flags};
use sightline_proto::Timestamp;
use sightline_proto::flow::{LostEvent, LostEventSource};

const IFINDEX: u32 = 7;

#[derive(Debug, Clone)]
enum Step {
    /// The datapath publishes this many records.
    Write(u16),
    /// The follower asks for up to this many items.
    Read(u16),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![(1u16..40).prop_map(Step::Write), (1u16..20).prop_map(Step::Read),],
        1..60,
    )
}

fn decoder() -> Decoder {
    let mut decoder = Decoder::new("node-1".to_owned(), DropReasonNames::new(HashMap::new()));
    decoder.set_interface(
        IFINDEX,
        Some(InterfaceInfo {
            name: "lxc1".to_owned(),
            role: InterfaceRole::Endpoint,
        }),
    );
    decoder
}

/// The `seq`-th record the datapath produces; its sequence number is carried in
/// the source address so the follower can tell which one it got.
/// Every eleventh is a perf-buffer loss, which the ring holds like any event.
fn datapath_event(decoder: &mut Decoder, seq: u32) -> Event {
    if seq % 11 == 10 {
        return Event::Lost {
            time: Timestamp::now(),
            event: Box::new(LostEvent {
                source: LostEventSource::PerfEventRingBuffer as i32,
                num_events_lost: 1_000_000 + u64::from(seq),
                ..Default::default()
            }),
        };
    }
    let mut event = FlowEvent {
        kind: kind::TRACE,
        timestamp_ns: u64::from(seq) * 1000,
        tcp_flags: if seq.is_multiple_of(5) {
            tcp_flags::SYN
        } else {
            tcp_flags::ACK
        },
        packets: 1,
        bytes: 60,
        ..Default::default()
    };
    event.key.src_addr[..4].copy_from_slice(&[10, (seq >> 16) as u8, (seq >> 8) as u8, seq as u8]);
    event.key.dst_addr[..4].copy_from_slice(&[10, 2, 0, 1]);
    event.key.src_port = 30_000 + (seq % 20_000) as u16;
    event.key.dst_port = 80;
    event.key.protocol = IPPROTO_TCP;
    event.key.ip_version = 4;
    event.key.ifindex = IFINDEX;
    event.key.hook = hook::TC_INGRESS;
    // As the ring-buffer reader hands a record to the decoder.
    let bytes = sightline_bpf_common::record_bytes(&event);
    decoder.decode(bytes).unwrap()
}

/// The sequence number a delivered event was written with.
fn written_seq(event: &Event) -> u64 {
    match event {
        Event::Flow(record) => match record.ip_addresses().0 {
            Some(std::net::IpAddr::V4(source)) => {
                let [_, high, middle, low] = source.octets();
                u64::from(u32::from_be_bytes([0, high, middle, low]))
            }
            other => panic!("unexpected source {other:?}"),
        },
        Event::Lost { event, .. } => event.num_events_lost - 1_000_000,
        other => panic!("the datapath wrote no {other:?}"),
    }
}

fn follower(ring: Ring, lost_interval: Duration) -> Cursor {
    let query = Query {
        kind: Kind::Flows,
        number: 0,
        first: false,
        follow: true,
        since: None,
        until: None,
        filters: FilterSet::compile(&[], &[]).unwrap(),
    };
    Cursor::new(ring, query, lost_interval)
}

/// What the follower has seen so far, checked item by item.
#[derive(Default)]
struct Seen {
    /// The next sequence number the follower has not passed yet.
    next: u64,
    delivered: u64,
    /// Lost events reported.
    reported: u64,
    /// Gaps found between delivered events and not yet reported (long interval).
    unreported: u64,
    /// Reported since the last delivered event, ahead of the one that ends the
    /// gap (interval 0).
    announced: u64,
}

impl Seen {
    fn item(&mut self, item: Item, ring: &Ring, immediate: bool) -> Result<(), TestCaseError> {
        match item {
            Item::RingLost { count, .. } => {
                prop_assert!(count > 0, "an empty loss was reported");
                self.reported += count;
                if immediate {
                    // The follower can be lapped again before it reads the event
                    // after a gap: several reports then add up to that gap.
                    self.announced += count;
                } else {
                    prop_assert_eq!(count, self.unreported, "one report covers every gap since the last");
                    self.unreported = 0;
                }
            }
            Item::Event(entry) => {
                let seq = written_seq(entry.event());
                prop_assert!(
                    seq >= self.next,
                    "seq {} after {}: out of order or repeated",
                    seq,
                    self.next
                );
                prop_assert!(
                    seq >= ring.oldest(),
                    "seq {} delivered after it was overwritten (oldest {})",
                    seq,
                    ring.oldest()
                );
                let gap = seq - self.next;
                if immediate {
                    prop_assert_eq!(self.announced, gap, "the loss before seq {}", seq);
                    self.announced = 0;
                } else {
                    self.unreported += gap;
                }
                self.delivered += 1;
                self.next = seq + 1;
            }
        }
        Ok(())
    }

    /// The follower returned nothing: it must be at the head with nothing owed.
    fn caught_up(&self, ring: &Ring) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.next, ring.head(), "idle before the head");
        prop_assert_eq!(self.unreported + self.announced, 0, "losses still unreported when idle");
        prop_assert_eq!(
            self.delivered + self.reported,
            ring.head(),
            "every write delivered or reported lost"
        );
        Ok(())
    }
}

fn run(capacity: usize, lost_interval: Duration, steps: &[Step]) -> Result<(), TestCaseError> {
    let (writer, ring) = ring(capacity).unwrap();
    let mut sink = RingSink::new(writer, Arc::new(ObserverStats::default()));
    let mut decoder = decoder();
    let mut cursor = follower(ring.clone(), lost_interval);
    let immediate = lost_interval.is_zero();
    let mut seen = Seen::default();
    let mut written = 0u32;
    let read_until_idle = |cursor: &mut Cursor, seen: &mut Seen, limit: u16| -> Result<(), TestCaseError> {
        for _ in 0..limit {
            // The ring is filled synchronously, so a cursor that does not answer at
            // once is parked waiting for the next write.
            match cursor.next().now_or_never() {
                Some(Some(item)) => seen.item(item, &ring, immediate)?,
                Some(None) => prop_assert!(false, "a follow stream ended"),
                None => return seen.caught_up(&ring),
            }
        }
        Ok(())
    };
    for step in steps {
        match *step {
            Step::Write(n) => {
                for _ in 0..n {
                    sink.publish(datapath_event(&mut decoder, written));
                    written += 1;
                }
            }
            Step::Read(n) => read_until_idle(&mut cursor, &mut seen, n)?,
        }
    }
    read_until_idle(&mut cursor, &mut seen, u16::MAX)?;
    prop_assert_eq!(seen.next, u64::from(written));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_lapped_follower_sees_each_gap_reported_at_once(
        capacity in prop::sample::select(vec![1usize, 3, 7, 15, 31]),
        steps in steps(),
    ) {
        run(capacity, Duration::ZERO, &steps)?;
    }

    #[test]
    fn a_lapped_follower_gets_one_aggregated_report_when_it_catches_up(
        capacity in prop::sample::select(vec![1usize, 3, 7, 15, 31]),
        steps in steps(),
    ) {
        run(capacity, Duration::from_secs(3600), &steps)?;
    }
}

/// The same guarantees with the writer on its own thread, racing the follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_raced_by_a_writer_thread_loses_nothing_silently() {
    const WRITES: u32 = 200_000;
    let (writer, ring) = ring(63).unwrap();
    let mut cursor = follower(ring.clone(), Duration::from_millis(1));
    let writer = std::thread::spawn(move || {
        let mut sink = RingSink::new(writer, Arc::new(ObserverStats::default()));
        let mut decoder = decoder();
        for seq in 0..WRITES {
            sink.publish(datapath_event(&mut decoder, seq));
        }
    });
    let (mut next, mut delivered, mut reported) = (0u64, 0u64, 0u64);
    let outcome = tokio::time::timeout(Duration::from_secs(120), async {
        while next < u64::from(WRITES) || delivered + reported < u64::from(WRITES) {
            match cursor.next().await.expect("a follow stream never ends") {
                Item::RingLost { count, .. } => reported += count,
                Item::Event(entry) => {
                    let seq = written_seq(entry.event());
                    assert!(seq >= next, "seq {seq} after {next}: out of order or repeated");
                    delivered += 1;
                    next = seq + 1;
                    // A slow consumer now and then, so the writer laps it.
                    if delivered.is_multiple_of(64) {
                        tokio::task::yield_now().await;
                    }
                }
            }
            assert!(delivered + reported <= next, "more reported lost than was missed");
        }
    })
    .await;
    writer.join().unwrap();
    assert!(
        outcome.is_ok(),
        "follower stalled at seq {next}: {delivered} delivered, {reported} lost"
    );
    assert_eq!((next, delivered + reported), (u64::from(WRITES), u64::from(WRITES)));
}
