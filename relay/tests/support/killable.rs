//! Listeners whose connections a test can cut all at once, as when the process
//! behind them dies.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Killable {
    stop: CancellationToken,
    sockets: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Killable {
    /// Accepts on `listener` until killed, recording every connection.
    pub fn accept(&self, listener: TcpListener) -> mpsc::Receiver<TcpStream> {
        let (tx, rx) = mpsc::channel(16);
        let (stop, sockets) = (self.stop.clone(), self.sockets.clone());
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok((tcp, _)) => tcp, Err(_) => continue },
                };
                let std = tcp.into_std().unwrap();
                sockets.lock().unwrap().push(std.try_clone().unwrap());
                if tx.send(TcpStream::from_std(std).unwrap()).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Closes the listener and resets every connection; a later `accept` serves again.
    pub fn kill(&mut self) {
        self.stop.cancel();
        self.stop = CancellationToken::new();
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}
