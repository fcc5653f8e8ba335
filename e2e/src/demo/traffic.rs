//! Real traffic between the demo's pods, once a second until dropped: HTTP requests
//! frontend → backend (one answered 200, one 404), a DNS query frontend → dns, a ping frontend → db, and a
//! connection to backend:9000 that a firewall rule in the backend pod (on node-b)
//! drops, as a pod-level network policy would: node-b's agent reports it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{DemoCluster, DemoError};
use crate::dns_server::{self, DnsServer};

pub(crate) const HTTP_PORT: u16 = 8080;
pub(crate) const BLOCKED_PORT: u16 = 9000;
const ROUND: Duration = Duration::from_secs(1);

pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _dns: Option<DnsServer>,
    _firewall: Option<Firewall>,
}

/// An nftables table in one namespace, deleted on drop.
struct Firewall {
    netns: String,
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let _ = crate::netns::run(
            "ip",
            &[
                "netns",
                "exec",
                &self.netns,
                "nft",
                "delete",
                "table",
                "inet",
                "sightline_demo",
            ],
        );
    }
}

fn setup_err<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> DemoError {
    move |err| DemoError::Setup(format!("{what}: {err}"))
}

fn serve_http(listener: TcpListener, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut request = [0u8; 1024];
                let read = stream.read(&mut request).unwrap_or(0);
                let found = request[..read].starts_with(b"GET / ");
                let (status, body) = if found {
                    ("200 OK", "hello from backend\n")
                } else {
                    ("404 Not Found", "no such page\n")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn http_get(target: SocketAddr, path: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
}

fn dns_query(server: SocketAddr, id: u16) {
    let Ok(socket) = UdpSocket::bind("0.0.0.0:0") else {
        return;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = socket.send_to(&dns_server::query(id, "backend.shop.svc.cluster.local."), server);
    let mut answer = [0u8; 512];
    let _ = socket.recv_from(&mut answer);
}

impl Traffic {
    pub(crate) fn start(cluster: &DemoCluster) -> Result<Self, DemoError> {
        let pod = |name: &str| {
            cluster
                .pod(name)
                .ok_or_else(|| DemoError::Setup(format!("pod {name} missing")))
        };
        let (frontend, backend, dns, db) = (pod("frontend")?, pod("backend")?, pod("dns")?, pod("db")?);
        // Built up in place so that a failing step stops the threads already started.
        let mut traffic = Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            _dns: None,
            _firewall: None,
        };

        let backend_ip = backend.pod.ipv4;
        let listener = backend
            .pod
            .netns
            .run(move || TcpListener::bind((backend_ip, HTTP_PORT)))?
            .map_err(setup_err("HTTP server"))?;
        let serving = traffic.stop.clone();
        traffic
            .threads
            .push(std::thread::spawn(move || serve_http(listener, serving)));

        let records: HashMap<String, Ipv4Addr> = [("backend.shop.svc.cluster.local.".to_owned(), backend_ip)].into();
        let dns_target = traffic._dns.insert(DnsServer::start(&dns.pod, records)?).address;

        // In the backend pod, where a policy engine's rule would sit: the SYN passes
        // node-b's view of the pod's veth first, so node-b's agent (and only it)
        // reports the drop.
        traffic._firewall = Some(Firewall {
            netns: backend.pod.netns.name().to_owned(),
        });
        for rule in [
            "add table inet sightline_demo".to_owned(),
            "add chain inet sightline_demo input { type filter hook input priority 0 ; policy accept ; }".to_owned(),
            format!("add rule inet sightline_demo input ip daddr {backend_ip} tcp dport {BLOCKED_PORT} drop"),
        ] {
            backend.pod.netns.exec("nft", &[&rule])?;
        }

        let (http_target, blocked_target) = (
            SocketAddr::from((backend_ip, HTTP_PORT)),
            SocketAddr::from((backend_ip, BLOCKED_PORT)),
        );
        let db_ip = db.pod.ipv4;
        let client_stop = traffic.stop.clone();
        traffic.threads.push(
            frontend
                .pod
                .netns
                .spawn(move || {
                    let mut id: u16 = 1;
                    while !client_stop.load(Ordering::Relaxed) {
                        http_get(http_target, "/");
                        http_get(http_target, "/old-page");
                        dns_query(dns_target, id);
                        id = id.wrapping_add(1);
                        // Its own process group: a Ctrl-C for the demo is not a failed ping.
                        let _ = std::process::Command::new("ping")
                            .args(["-c1", "-W1", &db_ip.to_string()])
                            .process_group(0)
                            .output();
                        let _ = TcpStream::connect_timeout(&blocked_target, Duration::from_millis(300));
                        std::thread::sleep(ROUND);
                    }
                })
                .map_err(DemoError::Harness)?,
        );
        Ok(traffic)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
