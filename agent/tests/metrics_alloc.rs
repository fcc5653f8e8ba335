//! Counting a flow into a series that exists allocates nothing. A test binary of
//! its own: it replaces the global allocator to count allocations.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use sightline_agent::metrics::FlowMetrics;
use sightline_agent::metrics::options::parse_list;
use sightline_agent::synthetic;
use sightline_proto::Timestamp;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn counting_into_existing_series_does_not_allocate() {
    let list = "flow:sourceContext=pod;destinationContext=pod drop:sourceContext=pod;destinationContext=pod \
                tcp:sourceContext=pod;destinationContext=pod port-distribution:sourceContext=pod;destinationContext=pod \
                dns:sourceContext=pod;destinationContext=pod flows-to-world:port;labelsContext=source_ip,source_namespace,source_workload,traffic_direction";
    let mut metrics = FlowMetrics::new(&parse_list(&[list]).unwrap(), 10_000).unwrap();
    let records: Vec<_> = (0..512)
        .map(|i| synthetic::record(i, "node-1", Timestamp::now()))
        .collect();
    for record in &records {
        metrics.process(record);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..3 {
        for record in &records {
            metrics.process(record);
        }
    }
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(during, 0, "{during} allocations for 1536 flows into existing series");
}
