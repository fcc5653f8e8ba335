//! SIGINT and SIGTERM as values the demo waits for, so that neither ends the process
//! before its guards have removed what it created.

use std::fmt;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::DemoError;

/// A signal that asks the demo to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT, e.g. Ctrl-C.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// The exit status shells report for a process this signal ended: 128 + its number.
    pub fn exit_status(self) -> u8 {
        let number = match self {
            Self::Interrupt => libc::SIGINT,
            Self::Terminate => libc::SIGTERM,
        };
        128 + number as u8
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        })
    }
}

/// Once created, SIGINT and SIGTERM no longer terminate the process for the rest of
/// its life (tokio keeps its handlers installed); they are only reported by `recv`.
pub(crate) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Must be called inside a tokio runtime.
    pub(crate) fn install() -> Result<Self, DemoError> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(DemoError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(DemoError::Signals)?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM, including one that arrived before this call.
    pub(crate) async fn recv(&mut self) -> StopSignal {
        tokio::select! {
            Some(()) = self.interrupt.recv() => StopSignal::Interrupt,
            Some(()) = self.terminate.recv() => StopSignal::Terminate,
            // Both streams end only when the runtime shuts down; nothing will arrive then.
            else => std::future::pending().await,
        }
    }
}
