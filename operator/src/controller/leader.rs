//! Leader election through a `coordination.k8s.io/v1` Lease, so two replicas never
//! reconcile at once. The decision is a pure function of the Lease and the clock;
//! the loop around it reads and writes the Lease with optimistic concurrency, so
//! two candidates racing for it cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

use sightline_common::shutdown::Shutdown;

/// What a candidate does with the Lease as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds it, or the holder stopped renewing: take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live lease.
    Follow {
        /// The identity that holds the lease.
        holder: String,
    },
}

/// Decides from the Lease's spec, our identity and the time.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Acquire;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() {
        return LeaseDecision::Acquire;
    }
    if holder == me {
        return LeaseDecision::Renew;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let expired = match &spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(renewed) => now >= renewed.0 + duration,
        None => true,
    };
    if expired {
        LeaseDecision::Acquire
    } else {
        LeaseDecision::Follow { holder }
    }
}

/// The Lease's timing and names.
#[derive(Debug, Clone)]
pub struct Election {
    /// The Lease object's name.
    pub lease_name: String,
    /// This replica's holder identity.
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews.
    pub renew_interval: Duration,
}

impl Election {
    /// How long a leader goes on leading without a successful renewal: two thirds
    /// of the lease (client-go's 10 s of 15 s), so it has stopped before a standby
    /// can see the lease expire, even when a request hangs instead of failing.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }
}

fn spec_for(election: &Election, previous: Option<&LeaseSpec>, now: Timestamp, acquiring: bool) -> LeaseSpec {
    let transitions = previous.and_then(|spec| spec.lease_transitions).unwrap_or(0);
    let held_by_us = previous.and_then(|spec| spec.holder_identity.as_deref()) == Some(election.identity.as_str());
    LeaseSpec {
        holder_identity: Some(election.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(election.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)),
        acquire_time: if acquiring {
            Some(MicroTime(now))
        } else {
            previous.and_then(|spec| spec.acquire_time.clone())
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if acquiring && !held_by_us {
            transitions + 1
        } else {
            transitions
        }),
        ..LeaseSpec::default()
    }
}

/// When this replica first saw the Lease's current record (holder and renew time).
/// Expiry is judged on the local clock from that moment, as client-go does, so a
/// holder whose clock runs behind ours is not taken for dead while it renews.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(Option<String>, Option<Timestamp>)>,
    since: Option<tokio::time::Instant>,
}

impl Observed {
    /// The time to judge `spec` at: its renew time plus how long ago we first saw it.
    fn judging_time(&mut self, spec: Option<&LeaseSpec>) -> Timestamp {
        let record = spec.map(|spec| {
            (
                spec.holder_identity.clone(),
                spec.renew_time
                    .as_ref()
                    .or(spec.acquire_time.as_ref())
                    .map(|time| time.0),
            )
        });
        let local_now = tokio::time::Instant::now();
        if self.record != record || self.since.is_none() {
            self.record = record.clone();
            self.since = Some(local_now);
        }
        let seen_for = self.since.map_or(Duration::ZERO, |since| local_now - since);
        match record.and_then(|(_, renewed)| renewed) {
            Some(renewed) => renewed
                .checked_add(SignedDuration::try_from(seen_for).unwrap_or(SignedDuration::ZERO))
                .unwrap_or(Timestamp::MAX),
            None => Timestamp::now(),
        }
    }
}

/// One round: read the Lease, act on the decision. `Ok(true)` when we lead.
async fn round(api: &Api<Lease>, election: &Election, observed: &mut Observed) -> Result<bool, kube::Error> {
    let current = api.get_opt(&election.lease_name).await?;
    let now = Timestamp::now();
    let decision = decide(
        current.as_ref().and_then(|lease| lease.spec.as_ref()),
        &election.identity,
        observed.judging_time(current.as_ref().and_then(|lease| lease.spec.as_ref())),
    );
    let acquiring = match decision {
        LeaseDecision::Follow { .. } => return Ok(false),
        LeaseDecision::Acquire => true,
        LeaseDecision::Renew => false,
    };
    let spec = spec_for(
        election,
        current.as_ref().and_then(|lease| lease.spec.as_ref()),
        now,
        acquiring,
    );
    let result = match current {
        // The resourceVersion makes the write fail if another candidate wrote first.
        Some(mut lease) => {
            lease.spec = Some(spec);
            api.replace(&election.lease_name, &PostParams::default(), &lease).await
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(election.lease_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Gives the Lease up on shutdown so a standby takes over at once.
async fn release(api: &Api<Lease>, election: &Election) -> Result<(), kube::Error> {
    if let Some(mut lease) = api.get_opt(&election.lease_name).await?
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(election.identity.as_str())
    {
        spec.holder_identity = None;
        api.replace(&election.lease_name, &PostParams::default(), &lease)
            .await?;
    }
    Ok(())
}

/// Runs the election until `shutdown`, publishing whether we lead. A leader that
/// cannot renew before its lease would expire steps down on its own.
pub async fn run(
    client: Client,
    namespace: String,
    election: Election,
    leading: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let mut last_renewed: Option<tokio::time::Instant> = None;
    let mut observed = Observed::default();
    loop {
        // A request to an unreachable API server can hang for minutes (the client's
        // read timeout); a leader must not wait for it past its renew deadline.
        let deadline = match last_renewed {
            Some(at) if *leading.borrow() => at + election.renew_deadline(),
            _ => tokio::time::Instant::now() + election.renew_deadline(),
        };
        let outcome = match tokio::time::timeout_at(deadline, round(&api, &election, &mut observed)).await {
            Ok(outcome) => outcome.map_err(|error| error.to_string()),
            Err(_) => Err("no answer from the API server before the renew deadline".to_owned()),
        };
        match outcome {
            Ok(true) => {
                if !*leading.borrow() {
                    info!(identity = %election.identity, lease = %election.lease_name, "became leader");
                }
                last_renewed = Some(tokio::time::Instant::now());
                leading.send_replace(true);
            }
            Ok(false) => {
                if *leading.borrow() {
                    warn!(identity = %election.identity, "lost the lease to another replica");
                }
                leading.send_replace(false);
            }
            Err(error) => {
                warn!(%error, "leader election: the Lease could not be read or written");
                let stale = last_renewed.is_none_or(|at| at.elapsed() >= election.renew_deadline());
                if stale && *leading.borrow() {
                    warn!("stepping down: the lease may have expired");
                    leading.send_replace(false);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(election.renew_interval) => {}
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        if let Err(error) = release(&api, &election).await {
            warn!(%error, "could not release the Lease; the standby waits for it to expire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions_follow_holder_and_expiry() {
        let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(decide(None, "a", now), LeaseDecision::Acquire);
        assert_eq!(decide(Some(&held_by("a", now)), "a", now), LeaseDecision::Renew);
        let fresh = held_by("b", now - SignedDuration::from_secs(14));
        assert_eq!(
            decide(Some(&fresh), "a", now),
            LeaseDecision::Follow { holder: "b".into() }
        );
        let stale = held_by("b", now - SignedDuration::from_secs(15));
        assert_eq!(decide(Some(&stale), "a", now), LeaseDecision::Acquire);
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("b", now)
        };
        assert_eq!(decide(Some(&released), "a", now), LeaseDecision::Acquire);
    }
}
