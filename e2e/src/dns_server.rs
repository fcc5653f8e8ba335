//! A tiny authoritative UDP DNS responder for tests: answers A queries for the names
//! it was given (TTL 30) and NXDOMAIN for the rest. Stops when dropped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{Pod, Result};

/// The TTL of every answer, in seconds, for tests that check the TTL a flow reports.
pub const TTL: u32 = 30;

/// A running responder; dropping it stops its thread (within 50 ms).
#[derive(Debug)]
pub struct DnsServer {
    /// Where it answers: the pod's IPv4 address, port 53.
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Serves on the pod's IPv4 address, port 53. `records`: fully qualified name ("example.com.") -> address.
    pub fn start(pod: &Pod, records: HashMap<String, Ipv4Addr>) -> Result<Self> {
        let address = SocketAddr::from((pod.ipv4, 53));
        let socket = pod.netns.run(move || UdpSocket::bind(address))??;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..len], &records) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Ok(Self {
            address,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Builds a query for `name` (e.g. "example.com.") with type A.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut message = vec![(id >> 8) as u8, id as u8, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.extend_from_slice(&[0, 0, 1, 0, 1]);
    message
}

fn answer(query: &[u8], records: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    // Read the first question's name (uncompressed, as clients send it).
    let mut name = String::new();
    let mut offset = 12;
    loop {
        let len = *query.get(offset)? as usize;
        offset += 1;
        if len == 0 {
            break;
        }
        name.push_str(std::str::from_utf8(query.get(offset..offset + len)?).ok()?);
        name.push('.');
        offset += len;
    }
    let question_end = offset + 4;
    let question = query.get(12..question_end)?;
    let qtype = u16::from_be_bytes([question[question.len() - 4], question[question.len() - 3]]);
    let found = records.get(&name).filter(|_| qtype == 1);
    let mut reply = query[..2].to_vec();
    let rcode = if records.contains_key(&name) { 0 } else { 3 };
    reply.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, found.is_some() as u8, 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if let Some(ip) = found {
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        reply.extend_from_slice(&TTL.to_be_bytes());
        reply.extend_from_slice(&[0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}
