//! Removes the series of a pod some time after it left, as Hubble does one
//! minute after the endpoint is deleted: late flows of the pod still count in
//! that minute, and a scrape between deletion and expiry still sees its last values.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::sink::GonePod;
use crate::enrich::index::PodDeparture;

pub(crate) const EXPIRY_DELAY: Duration = Duration::from_secs(60);

/// Forwards each departure as a [`GonePod`] `delay` after it arrived. Runs on a
/// thread of its own until either side hangs up.
pub(crate) fn forward_after(departures: Receiver<PodDeparture>, delay: Duration, gone: Sender<GonePod>) {
    let spawned = std::thread::Builder::new()
        .name("metrics-expiry".into())
        .spawn(move || {
            let mut due: VecDeque<(Instant, PodDeparture)> = VecDeque::new();
            loop {
                let received = match due.front() {
                    Some((at, _)) => departures.recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => departures.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(departure) => due.push_back((Instant::now() + delay, departure)),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) if due.is_empty() => return,
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(
                        due.front()
                            .map_or(Duration::ZERO, |(at, _)| at.saturating_duration_since(Instant::now())),
                    ),
                }
                while due.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                    let Some((_, departure)) = due.pop_front() else { break };
                    let pod = GonePod {
                        namespace: departure.namespace,
                        name: departure.name,
                        ips: vec![departure.ip.to_string()],
                    };
                    if gone.send(pod).is_err() {
                        return;
                    }
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!(%err, "cannot start the metrics expiry thread; series of deleted pods stay");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_departure_is_forwarded_after_the_delay_not_before() {
        let (departures, receive_departures) = std::sync::mpsc::channel();
        let (gone, receive_gone) = std::sync::mpsc::channel();
        forward_after(receive_departures, Duration::from_millis(300), gone);
        let sent = Instant::now();
        departures
            .send(PodDeparture {
                namespace: "shop".into(),
                name: "web-1".into(),
                ip: "10.0.0.5".parse().unwrap(),
            })
            .unwrap();
        let pod = receive_gone.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(sent.elapsed() >= Duration::from_millis(300), "forwarded early");
        assert_eq!(
            pod,
            GonePod {
                namespace: "shop".into(),
                name: "web-1".into(),
                ips: vec!["10.0.0.5".into()],
            }
        );
    }
}
