//! Converts the kernel's boot-time stamps (`bpf_ktime_get_boot_ns`) to wall-clock time.

use sightline_proto::Timestamp;

/// Wall clock minus boot clock, sampled once; re-sample after the wall clock steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BootClock {
    offset_ns: i64,
}

/// Nanoseconds fit an i64 until 2262; 64-bit arithmetic keeps `to_wall` (once per
/// event) free of 128-bit division.
fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec.saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec)
}

impl BootClock {
    pub(crate) fn sample() -> Self {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let wall = clock_ns(libc::CLOCK_REALTIME);
        Self { offset_ns: wall - boot }
    }

    /// Nanoseconds since the Unix epoch (0 for a boot time before it, which cannot happen).
    pub(crate) fn to_wall_ns(self, boot_ns: u64) -> u64 {
        let wall = i64::try_from(boot_ns)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset_ns);
        u64::try_from(wall).unwrap_or(0)
    }

    pub(crate) fn to_wall(self, boot_ns: u64) -> Timestamp {
        let wall = i64::try_from(boot_ns)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset_ns);
        Timestamp {
            seconds: wall.div_euclid(1_000_000_000),
            nanos: wall.rem_euclid(1_000_000_000) as i32,
        }
    }
}
