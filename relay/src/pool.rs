//! One managed connection per peer.
//!
//! Each peer gets a task that dials it, confirms it answers `ServerStatus`, then
//! probes it periodically; on failure it retries with exponential backoff and jitter
//! (1 s doubling to 1 min). A peer that accepts TCP but never answers therefore
//! never counts as connected. Callers read consistent snapshots and are woken when
//! any peer changes state.

use sightline_common::backoff::Backoff;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sightline_proto::observer::{ServerStatusRequest, ServerStatusResponse, observer_client::ObserverClient};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::dial::Dialer;
use crate::discovery::{PeerChange, PeerInfo};

const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Numbers every connection the relay makes, across peers.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Largest message a peer may send; flows with big L7 payloads exceed tonic's 4 MiB default.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

#[derive(Clone, Debug)]
/// How a peer's connection stands, as `GetNodes` and the peer gauge report it.
pub enum PeerState {
    /// Dialling (first time or after a failure).
    Connecting,
    /// Open, with the status the peer last answered.
    Connected {
        /// The channel calls go on.
        channel: Channel,
        /// The peer's last `ServerStatus` answer.
        status: Box<ServerStatusResponse>,
        /// Numbers connections: a new one after a failure has a higher number,
        /// even if nobody saw the peer drop in between.
        connection: u64,
    },
    /// The last attempt failed; retried after `--retry-timeout`.
    Unavailable {
        /// The failure, as `GetNodes` reports it.
        error: String,
    },
}

#[derive(Clone, Debug)]
/// One peer as the pool sees it now.
pub struct PeerView {
    /// The peer as announced.
    pub info: PeerInfo,
    /// Its connection state.
    pub state: PeerState,
}

impl PeerView {
    /// An Observer client on the peer's channel, when connected.
    pub fn client(&self) -> Option<ObserverClient<Channel>> {
        match &self.state {
            PeerState::Connected { channel, .. } => Some(observer_client(channel.clone())),
            _ => None,
        }
    }

    /// The peer's channel, when connected.
    pub fn channel(&self) -> Option<Channel> {
        match &self.state {
            PeerState::Connected { channel, .. } => Some(channel.clone()),
            _ => None,
        }
    }

    /// The number of the connection, when connected.
    pub fn connection(&self) -> Option<u64> {
        match &self.state {
            PeerState::Connected { connection, .. } => Some(*connection),
            _ => None,
        }
    }
}

struct Slot {
    info: PeerInfo,
    state: PeerState,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
/// The agents the relay knows, each with one channel kept open and redialled; cheap to clone.
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    dialer: Dialer,
    slots: Mutex<BTreeMap<String, Slot>>,
    generation: watch::Sender<u64>,
}

impl Pool {
    /// An empty pool that dials with `dialer`.
    pub fn new(dialer: Dialer) -> Self {
        Self {
            inner: Arc::new(Inner {
                dialer,
                slots: Mutex::default(),
                generation: watch::Sender::new(0),
            }),
        }
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        // A poisoned lock only means a panic elsewhere mid-update of plain data; keep serving.
        self.inner.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// Applies a discovery change. An upsert equal to the known peer is a no-op;
    /// otherwise the old connection is dropped and the peer dialled afresh.
    pub fn apply(&self, change: PeerChange) {
        match change {
            PeerChange::Upsert(info) => {
                let mut slots = self.slots();
                if let Some(slot) = slots.get(&info.name).filter(|slot| slot.info == info) {
                    slot.wake.notify_one();
                    return;
                }
                let wake = Arc::new(Notify::new());
                let task = tokio::spawn(manage(self.clone(), info.clone(), wake.clone()));
                slots.insert(
                    info.name.clone(),
                    Slot {
                        info,
                        state: PeerState::Connecting,
                        wake,
                        task,
                    },
                );
            }
            PeerChange::Delete(name) => {
                if self.slots().remove(&name).is_none() {
                    return;
                }
            }
        }
        self.bump();
    }

    /// Every known peer and its state, sorted by name.
    pub fn snapshot(&self) -> Vec<PeerView> {
        self.slots()
            .values()
            .map(|slot| PeerView {
                info: slot.info.clone(),
                state: slot.state.clone(),
            })
            .collect()
    }

    /// Resolves when any peer was added, removed or changed state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// A call to `name` failed at the transport level: re-check it now rather than at the next probe.
    pub fn report_failure(&self, name: &str) {
        if let Some(slot) = self.slots().get(name) {
            slot.wake.notify_one();
        }
    }

    fn set_state(&self, info: &PeerInfo, state: PeerState) {
        let mut slots = self.slots();
        // The slot may have been replaced by a newer announcement of the same name.
        let Some(slot) = slots.get_mut(&info.name).filter(|slot| slot.info == *info) else {
            return;
        };
        let changed = !matches!(
            (&slot.state, &state),
            (PeerState::Connected { .. }, PeerState::Connected { .. })
        );
        slot.state = state;
        drop(slots);
        if changed {
            self.bump();
        }
    }

    /// The dial timeout in force, also the answer timeout of unary calls to peers.
    pub fn dial_timeout(&self) -> Duration {
        self.inner.dialer.timeout()
    }
}

fn observer_client(channel: Channel) -> ObserverClient<Channel> {
    ObserverClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

async fn probe(client: &mut ObserverClient<Channel>, timeout: Duration) -> Result<ServerStatusResponse, String> {
    match tokio::time::timeout(timeout, client.server_status(ServerStatusRequest {})).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(format!("ServerStatus: {}", status.message())),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn manage(pool: Pool, info: PeerInfo, wake: Arc<Notify>) {
    let timeout = pool.inner.dialer.timeout();
    // ±20 %: the relays of a cluster do not all reconnect at once after an agent restarts.
    let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF, 0.2);
    loop {
        let attempt = Instant::now();
        let error = match pool
            .inner
            .dialer
            .connect(&info.address, info.tls_server_name.as_deref())
            .await
        {
            Err(err) => err.to_string(),
            Ok(channel) => {
                let mut client = observer_client(channel.clone());
                match probe(&mut client, timeout).await {
                    Err(err) => err,
                    Ok(status) => {
                        tracing::info!(peer = %info.name, address = %info.address, "peer connected");
                        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
                        pool.set_state(
                            &info,
                            PeerState::Connected {
                                channel: channel.clone(),
                                status: Box::new(status),
                                connection,
                            },
                        );
                        backoff.reset();
                        let connected = Connected {
                            client: &mut client,
                            channel: &channel,
                            connection,
                        };
                        watch_connected(&pool, &info, connected, &wake, timeout).await
                    }
                }
            }
        };
        let wait = backoff.next_wait(attempt.elapsed(), fastrand::f64());
        tracing::warn!(peer = %info.name, address = %info.address, %error, retry_in = ?wait, "peer unavailable");
        pool.set_state(&info, PeerState::Unavailable { error });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // A fresh announcement of the peer skips the backoff, as in Hubble.
            () = wake.notified() => {}
        }
    }
}

struct Connected<'a> {
    client: &'a mut ObserverClient<Channel>,
    channel: &'a Channel,
    connection: u64,
}

/// Returns the reason the connection is no longer usable.
async fn watch_connected(
    pool: &Pool,
    info: &PeerInfo,
    Connected {
        client,
        channel,
        connection,
    }: Connected<'_>,
    wake: &Notify,
    timeout: Duration,
) -> String {
    loop {
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
            () = wake.notified() => {}
        }
        match probe(client, timeout).await {
            Ok(status) => pool.set_state(
                info,
                PeerState::Connected {
                    channel: channel.clone(),
                    status: Box::new(status),
                    connection,
                },
            ),
            Err(err) => return err,
        }
    }
}
