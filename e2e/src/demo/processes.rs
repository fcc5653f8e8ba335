//! Child processes that are stopped (SIGTERM, then SIGKILL after 5 s) when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::DemoError;

/// A child process with its output in a log file; stopped when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `<logs>/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, logs: &Path) -> Result<Self, DemoError> {
        let log = std::fs::File::create(logs.join(format!("{name}.log")))
            .map_err(|e| DemoError::Setup(format!("log file for {name}: {e}")))?;
        let err = log.try_clone().map_err(|e| DemoError::Setup(e.to_string()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| DemoError::Setup(format!("starting {name}: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Fails if the process already exited (e.g. a bad flag), naming its log.
    pub fn check_running(&mut self, logs: &Path) -> Result<(), DemoError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(DemoError::Setup(format!(
                "{} exited ({status}); see {}",
                self.name,
                logs.join(format!("{}.log", self.name)).display()
            ))),
            Err(e) => Err(DemoError::Setup(e.to_string())),
        }
    }
}

impl Process {
    /// Sends SIGTERM without waiting; dropping the process then waits for it to exit.
    pub fn terminate(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id())
            && matches!(self.child.try_wait(), Ok(None))
        {
            // SAFETY: signalling our own child, not yet reaped, so the pid is still its.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }

    /// SIGKILL, as when a node dies: no chance to close connections cleanly.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("demo: {} did not stop within 5 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
