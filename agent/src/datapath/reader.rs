//! Drains the ring buffer into the decoder and the sink, and turns the kernel's
//! per-CPU "reservation failed" counters into `LostEvent`s.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use pbjson_types::Int32Value;
use sightline_bpf_common::stats;
use sightline_proto::Timestamp;
use sightline_proto::flow::{LostEvent, LostEventSource};

use super::debug::{DebugEvents, DebugNote};
use super::decode::Decoder;
use crate::event::{Event, EventSink};
use crate::l7::{CaptureCounters, L7Stats};

pub(crate) struct Reader {
    ring: RingBuf<MapData>,
    stats: PerCpuArray<MapData, u64>,
    lost_seen: Vec<u64>,
    decode_errors: u64,
    last_error_log: Option<Instant>,
}

impl Reader {
    pub(crate) fn new(ring: RingBuf<MapData>, stats: PerCpuArray<MapData, u64>) -> Self {
        Self {
            ring,
            stats,
            lost_seen: Vec::new(),
            decode_errors: 0,
            last_error_log: None,
        }
    }

    pub(crate) fn ring_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Decodes and publishes everything currently in the ring; returns how many records.
    pub(crate) fn drain(&mut self, decoder: &mut Decoder, debug: &mut DebugEvents, sink: &mut dyn EventSink) -> usize {
        let mut count = 0;
        while let Some(record) = self.ring.next() {
            count += 1;
            if decoder.ignores(&record) {
                continue;
            }
            match decoder.decode_each(&record, &mut |event| sink.publish(event)) {
                Ok(()) => {}
                Err(error) => {
                    self.decode_errors += 1;
                    // Malformed records are counted; the log is limited to one line a second.
                    if self.last_error_log.is_none_or(|t| t.elapsed().as_secs() >= 1) {
                        self.last_error_log = Some(Instant::now());
                        tracing::warn!(%error, total = self.decode_errors, "undecodable datapath record");
                    }
                    debug.emit(
                        sink,
                        DebugNote {
                            message: format!("undecodable datapath record: {error}"),
                            ..DebugNote::default()
                        },
                    );
                }
            }
        }
        count
    }

    /// Refreshes the kernel's L7 capture counters (summed over CPUs) in `stats`. A counter
    /// that cannot be read keeps its last value: the next second tries again.
    pub(crate) fn report_l7_capture(&self, stats: &L7Stats) {
        let total = |index: u32| {
            self.stats
                .get(&index, 0)
                .ok()
                .map(|per_cpu| per_cpu.iter().copied().fold(0u64, u64::saturating_add))
        };
        let last = stats.capture();
        stats.set_capture(CaptureCounters {
            captured: total(stats::L7_CAPTURED).unwrap_or(last.captured),
            copy_failed: total(stats::L7_COPY_FAILED).unwrap_or(last.copy_failed),
            not_detected: total(stats::L7_NOT_DETECTED).unwrap_or(last.not_detected),
        });
    }

    /// Publishes one `LostEvent` per CPU whose reservation failures grew since the last call.
    pub(crate) fn report_lost(&mut self, debug: &mut DebugEvents, sink: &mut dyn EventSink) {
        let Ok(per_cpu) = self.stats.get(&stats::RINGBUF_LOST, 0) else {
            return;
        };
        if self.lost_seen.len() < per_cpu.len() {
            self.lost_seen.resize(per_cpu.len(), 0);
        }
        for (cpu, total) in per_cpu.iter().enumerate() {
            let lost = total.saturating_sub(self.lost_seen[cpu]);
            if lost == 0 {
                continue;
            }
            self.lost_seen[cpu] = *total;
            debug.emit(
                sink,
                DebugNote {
                    message: format!("{lost} events lost: the kernel ring buffer was full"),
                    cpu: Some(cpu as i32),
                    ..DebugNote::default()
                },
            );
            sink.publish(Event::Lost {
                time: Timestamp::now(),
                event: Box::new(LostEvent {
                    source: LostEventSource::PerfEventRingBuffer as i32,
                    num_events_lost: lost,
                    cpu: Some(Int32Value { value: cpu as i32 }),
                    first: None,
                    last: None,
                }),
            });
        }
    }
}
