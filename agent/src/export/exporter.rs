//! The exporter thread and the pipeline's handle on it.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::aggregate::{AggregationSpec, Aggregator};
use super::rotate::{RotatingFile, Rotation};
use super::{ExportArgs, ExportError, encode};
use crate::metrics::runtime::LostEvents;
use crate::observer::entry::Entry;
use crate::observer::fieldmask::FlowMask;
use crate::observer::filter::FilterSet;

/// Events waiting for the disk; beyond this they are counted as lost.
pub const QUEUE_CAPACITY: usize = 16_384;
/// Lines gathered before one write.
const BATCH_BYTES: usize = 64 * 1024;
/// Events taken from the queue before the writer looks at the clock again, so a
/// queue that never empties does not hold up an aggregation interval.
const BATCH_EVENTS: usize = 4096;
/// How long the writer waits for events before it looks at the clock anyway.
const IDLE_WAIT: Duration = Duration::from_millis(200);
const LOST_SOURCE: &str = "hubble_exporter";

enum Output {
    Stdout(std::io::Stdout),
    File(RotatingFile),
}

impl Output {
    fn write_lines(&mut self, lines: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(out) => out.write_all(lines),
            Output::File(file) => file.write_lines(lines),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File(file) => file.flush(),
        }
    }
}

/// The pipeline side: filters, then queues without waiting.
pub struct ExporterTap {
    filters: FilterSet,
    queue: SyncSender<Arc<Entry>>,
    lost: Option<LostEvents>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl ExporterTap {
    /// Closes the queue and waits until the writer has written what was queued.
    pub fn stop(mut self) {
        let writer = self.writer.take();
        drop(self);
        if let Some(writer) = writer
            && writer.join().is_err()
        {
            tracing::warn!("a flow export writer panicked");
        }
    }

    /// Queues `entry` if it passes the allow/deny lists; a full queue counts it in
    /// `hubble_lost_events_total{source="hubble_exporter"}` instead of waiting.
    pub fn offer(&mut self, entry: &Arc<Entry>) {
        if !self.filters.matches(entry.event()) {
            return;
        }
        match self.queue.try_send(Arc::clone(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                count_lost(self.lost.as_ref(), 1);
            }
        }
    }
}

/// Starts exporters: the static one from the flags, or one per dynamic `flowLogs` entry.
pub struct Exporter;

/// The writer thread. It ends once every [`ExporterTap`] is dropped and the
/// queue is written out; [`join`](Self::join) waits for that.
pub struct ExportThread(std::thread::JoinHandle<()>);

impl ExportThread {
    /// Waits until the queued lines are written and flushed. Call after the
    /// pipeline (which holds the tap) has ended, or it waits for that too.
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the flow export thread panicked; lines still queued are lost");
        }
    }
}

impl Exporter {
    /// Checks the flags (mistakes stop the agent), opens the output and starts
    /// the writer thread. None when export is off.
    pub fn start(
        args: &ExportArgs,
        node_name: String,
        lost: Option<LostEvents>,
    ) -> Result<Option<(ExporterTap, ExportThread)>, ExportError> {
        Self::start_with_capacity(args, node_name, lost, QUEUE_CAPACITY)
    }

    /// [`start`](Self::start) with a queue of `capacity` events instead of [`QUEUE_CAPACITY`].
    pub(crate) fn start_with_capacity(
        args: &ExportArgs,
        node_name: String,
        lost: Option<LostEvents>,
        capacity: usize,
    ) -> Result<Option<(ExporterTap, ExportThread)>, ExportError> {
        if !args.enabled() {
            return Ok(None);
        }
        let rotation = Rotation {
            max_bytes: args.export_file_max_size_mb.max(1) * 1024 * 1024,
            max_backups: args.export_file_max_backups,
            compress: args.export_file_compress,
        };
        let target = ExportTarget {
            path: args.path(),
            rotation,
            filters: args.filters()?,
            mask: args.mask()?,
            aggregation: args.aggregation()?,
        };
        let (tap, writer) = Self::spawn(target, node_name, lost, capacity)?;
        Ok(Some((tap, ExportThread(writer))))
    }

    /// Opens the target's output and starts its writer thread, which
    /// [`ExporterTap::stop`] joins.
    pub fn start_target(
        target: ExportTarget,
        node_name: String,
        lost: Option<LostEvents>,
        capacity: usize,
    ) -> Result<ExporterTap, ExportError> {
        let (mut tap, writer) = Self::spawn(target, node_name, lost, capacity)?;
        tap.writer = Some(writer);
        Ok(tap)
    }

    fn spawn(
        target: ExportTarget,
        node_name: String,
        lost: Option<LostEvents>,
        capacity: usize,
    ) -> Result<(ExporterTap, std::thread::JoinHandle<()>), ExportError> {
        let shown_path = target.path.clone().unwrap_or_else(|| "stdout".into());
        let output = match target.path {
            None => Output::Stdout(std::io::stdout()),
            Some(path) => Output::File(
                RotatingFile::open(path.clone(), target.rotation)
                    .map_err(|source| ExportError::File { path, source })?,
            ),
        };
        let encoder = encode::LineEncoder::new(node_name, target.mask);
        let aggregation = target.aggregation;
        let writer_lost = lost.clone();
        let (queue, receive) = std::sync::mpsc::sync_channel(capacity);
        let writer = std::thread::Builder::new()
            .name("flow-export".into())
            .spawn(move || run(receive, output, encoder, aggregation, writer_lost))
            .map_err(|source| ExportError::File {
                path: shown_path,
                source,
            })?;
        let tap = ExporterTap {
            filters: target.filters,
            queue,
            lost,
            writer: None,
        };
        Ok((tap, writer))
    }
}

/// Where and what one exporter writes, checked.
pub struct ExportTarget {
    /// None = stdout.
    pub path: Option<std::path::PathBuf>,
    /// When the file rotates; ignored for stdout.
    pub rotation: Rotation,
    /// The allow and deny lists; events they reject are never queued.
    pub filters: FilterSet,
    /// Flow fields to keep in each line; `None` writes whole events.
    pub mask: Option<FlowMask>,
    /// Flows are aggregated instead of written one by one.
    pub aggregation: Option<AggregationSpec>,
}

fn count_lost(lost: Option<&LostEvents>, events: u64) {
    if let Some(lost) = lost
        && events > 0
    {
        lost.get_or_create(&vec![("source", LOST_SOURCE.to_owned())])
            .inc_by(events);
    }
}

fn run(
    queue: Receiver<Arc<Entry>>,
    mut output: Output,
    mut encoder: encode::LineEncoder,
    aggregation: Option<AggregationSpec>,
    lost: Option<LostEvents>,
) {
    let mut aggregator = aggregation.map(|spec| Aggregator::new(spec, Instant::now()));
    let mut batch = Vec::with_capacity(BATCH_BYTES * 2);
    loop {
        let wait = aggregator
            .as_ref()
            .map_or(IDLE_WAIT, |a| a.until_due(Instant::now()).min(IDLE_WAIT));
        let (mut next, open) = match queue.recv_timeout(wait) {
            Ok(entry) => (Some(entry), true),
            Err(RecvTimeoutError::Timeout) => (None, true),
            Err(RecvTimeoutError::Disconnected) => (None, false),
        };
        let mut taken = 0;
        while let Some(entry) = next {
            match (entry.event(), aggregator.as_mut()) {
                (crate::event::Event::Flow(record), Some(aggregator)) => {
                    // Refusals are counted per interval, when the interval is written.
                    aggregator.add(record);
                }
                (event, _) => encoder.write(event, &mut batch),
            }
            taken += 1;
            next = if batch.len() < BATCH_BYTES && taken < BATCH_EVENTS {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if let Some(aggregator) = aggregator.as_mut() {
            // On shutdown the groups counted so far are written, as Hubble does.
            let due = if open {
                aggregator.take_if_due(Instant::now())
            } else {
                Some(aggregator.take())
            };
            if let Some((flows, dropped)) = due {
                for record in &flows {
                    encoder.write_aggregated(record, &mut batch);
                }
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        "flow aggregation: group limit reached, flows of new groups dropped"
                    );
                    count_lost(lost.as_ref(), dropped);
                }
            }
        }
        if !batch.is_empty() {
            if let Err(err) = output.write_lines(&batch).and_then(|()| output.flush()) {
                // The lines are dropped; the queue keeps the pipeline independent of the disk.
                tracing::warn!(%err, lines = bytecount(&batch), "flow export write failed");
            }
            batch.clear();
        }
        if !open {
            return;
        }
    }
}

fn bytecount(batch: &[u8]) -> usize {
    batch.iter().filter(|b| **b == b'\n').count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::event::{Event, EventSink};
    use crate::observer::ring;
    use crate::observer::sink::{ObserverStats, RingSink};
    use crate::synthetic;

    /// An exporter that never drains its queue (a disk that does not return)
    /// costs the ring nothing: every event is still written, the overflow counted.
    #[test]
    fn a_stalled_exporter_loses_exports_not_ring_events() {
        let (writer, reader) = ring::ring(16_383).unwrap();
        let (queue, stalled) = std::sync::mpsc::sync_channel(8);
        let lost = LostEvents::default();
        let mut tap = ExporterTap {
            filters: FilterSet::default(),
            queue,
            lost: Some(lost.clone()),
            writer: None,
        };
        let mut sink = RingSink::new(writer, Arc::new(ObserverStats::default())).with_tap(move |e| tap.offer(e));
        let now = sightline_proto::Timestamp::now();
        for i in 0..10_000 {
            sink.publish(Event::Flow(Box::new(synthetic::record(i, "node-1", now))));
        }
        assert_eq!(reader.len(), 10_000, "every event reached the ring");
        assert_eq!(stalled.try_iter().count(), 8, "the queue holds what fits");
        let lost = lost
            .get_or_create(&vec![("source", "hubble_exporter".to_owned())])
            .get();
        assert_eq!(lost, 9_992);
    }

    /// Shutdown: once the pipeline drops its tap, joining the thread means every
    /// queued line is in the file, the last ones included.
    #[test]
    fn joining_after_the_tap_is_dropped_writes_every_queued_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.log");
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            export: ExportArgs,
        }
        let flags = <Flags as clap::Parser>::parse_from(["agent", "--export-file-path", path.to_str().unwrap()]);
        let args = flags.export;
        let (mut tap, thread) = Exporter::start_with_capacity(&args, "node-1".into(), None, 20_000)
            .unwrap()
            .unwrap();
        let now = sightline_proto::Timestamp::now();
        for i in 0..10_000 {
            let event = Event::Flow(Box::new(synthetic::record(i, "node-1", now)));
            tap.offer(&Arc::new(Entry::new(event)));
        }
        drop(tap);
        thread.join();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), 10_000);
        assert!(
            written
                .lines()
                .last()
                .unwrap()
                .contains("00000000-0000-4000-8000-00000000270f")
        );
    }
}
