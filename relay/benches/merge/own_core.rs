//! Gives the relay's threads a CPU of their own for a row, as a relay pod has in a
//! cluster, and puts every other thread of the bench (agents, client) on the others.
//! On the 2-core dev VM agents, client and relay otherwise preempt each other, and
//! the relay's CPU time then includes being switched out and back in.

use std::process::Command;

/// While alive, threads named `relay_thread` run on the last CPU and the rest on the
/// others; dropping it lets every thread run anywhere again.
pub struct OwnCore {
    all: String,
}

/// The bench process's threads: (thread id, thread name).
pub fn threads() -> Vec<(String, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            Some((
                task.file_name().to_string_lossy().into_owned(),
                comm.trim_end().to_owned(),
            ))
        })
        .collect()
}

fn set_cpus(tid: &str, cpus: &str) {
    let out = Command::new("taskset").args(["-p", "-c", cpus, tid]).output();
    match out {
        Ok(out) if out.status.success() => {}
        // A thread may have ended between listing and pinning.
        Ok(out) if !std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() => drop(out),
        other => panic!("taskset -p -c {cpus} {tid}: {other:?}"),
    }
}

impl OwnCore {
    /// `None` on a machine with one CPU.
    pub fn pin(relay_thread: &str) -> Option<Self> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        if cpus < 2 {
            return None;
        }
        let (own, others, all) = (
            (cpus - 1).to_string(),
            format!("0-{}", cpus - 2),
            format!("0-{}", cpus - 1),
        );
        for (tid, comm) in threads() {
            set_cpus(&tid, if comm == relay_thread { &own } else { &others });
        }
        Some(Self { all })
    }
}

impl Drop for OwnCore {
    fn drop(&mut self) {
        for (tid, _) in threads() {
            set_cpus(&tid, &self.all);
        }
    }
}
