//! One shutdown mechanism for every binary: a cancellation token that components
//! clone and wait on, cancelled by SIGTERM or SIGINT (or by a test).

use std::io;

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: Kubernetes ending the pod.
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        })
    }
}

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives during
/// start-up is not lost) and returns a future that completes on the first one.
pub fn stop_signal() -> io::Result<impl Future<Output = StopSignal>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => StopSignal::Terminate,
            _ = interrupt.recv() => StopSignal::Interrupt,
        }
    })
}

/// Cancels `shutdown` on the first stop signal; returns the handle of that watcher.
pub fn cancel_on_signal(shutdown: Shutdown) -> io::Result<tokio::task::JoinHandle<()>> {
    let signalled = stop_signal()?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            signal = signalled => {
                tracing::info!(%signal, "shutting down");
                shutdown.cancel();
            }
            () = shutdown.cancelled() => {}
        }
    }))
}
