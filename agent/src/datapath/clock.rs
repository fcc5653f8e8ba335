//! Converts the kernel's boot-time stamps (`bpf_ktime_get_boot_ns`) to wall-clock time.

use sightline_proto::Timestamp;

/// Wall clock minus boot clock, sampled once; re-sample after the wall clock steps.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    offset_ns: i128,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    pub fn sample() -> Self {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let wall = clock_ns(libc::CLOCK_REALTIME);
        Self { offset_ns: wall - boot }
    }

    pub fn now_boot_ns() -> u64 {
        clock_ns(libc::CLOCK_BOOTTIME) as u64
    }

    pub fn to_wall(&self, boot_ns: u64) -> Timestamp {
        Timestamp::from_unix_nanos(boot_ns as i128 + self.offset_ns)
    }
}
