//! What a Prometheus user does with an agent's `/metrics`: scrape it, sum samples,
//! run `promtool check metrics` on the text, and ask a real Prometheus server that
//! scrapes it (promtool and prometheus come from the Debian package `scripts/setup`
//! installs). Shared by the agent's tests and the end-to-end tests (`#[path]`), which
//! reach servers inside network namespaces through their own `Fetch`.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed and reaped however the test ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET: the status code and body, or None while nothing answers.
pub fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

/// The body of a GET that must answer 200 once anything answers.
pub fn get(address: SocketAddr, path: &str) -> Option<String> {
    let (status, body) = http_get(address, path)?;
    assert_eq!(status, 200, "{path}: {body}");
    Some(body)
}

/// Calls `probe` every 100 ms until it returns a value; fails the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sum of the samples of `metric` whose label text contains every one of `having`.
pub fn total(text: &str, metric: &str, having: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} ")))
        .filter(|line| having.iter().all(|h| line.contains(h)))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// The sample lines of `metric` (no comments), for failure messages.
pub fn samples<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} ")))
        .collect()
}

/// `promtool check metrics` on a scrape: fails the test with promtool's complaints.
pub fn promtool_check(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.prom");
    std::fs::write(&file, text).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (scripts/setup installs the prometheus package)");
    assert!(
        check.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// How the test reaches an address: directly, or from inside a network namespace.
pub type Fetch<'a> = Box<dyn Fn(SocketAddr, &str) -> Option<(u16, String)> + 'a>;

/// A Prometheus server scraping one target every second, with its storage in a
/// temporary directory; stopped when dropped.
pub struct Prometheus<'a> {
    api: SocketAddr,
    fetch: Fetch<'a>,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl<'a> Prometheus<'a> {
    /// Runs `command` (`prometheus`, or a wrapper that runs it elsewhere) with a config
    /// scraping `target`, listening on `api`, and waits until it is ready.
    pub fn start(mut command: Command, api: SocketAddr, target: SocketAddr, fetch: Fetch<'a>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sightline\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let process = Process(
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address={api}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("prometheus (scripts/setup installs the prometheus package)"),
        );
        let prometheus = Prometheus {
            api,
            fetch,
            _process: process,
            _dir: dir,
        };
        // It answers 503 until its storage is ready.
        wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            (prometheus.fetch)(api, "/-/ready").and_then(|(status, _)| (status == 200).then_some(()))
        });
        prometheus
    }

    /// Prometheus answering on the host's loopback, scraping `target` there.
    pub fn local(api: SocketAddr, target: SocketAddr) -> Self {
        Self::start(Command::new("prometheus"), api, target, Box::new(http_get))
    }

    /// The result vector of an instant query, or None while it is empty.
    pub fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let (status, body) = (self.fetch)(self.api, &format!("/api/v1/query?query={encoded}"))?;
        assert_eq!(status, 200, "{promql}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = answer["data"]["result"].as_array()?.clone();
        (!result.is_empty()).then_some(result)
    }
}

/// The value of an instant-vector sample as Prometheus' JSON gives it.
pub fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}
