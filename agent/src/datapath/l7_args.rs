//! Flags of L7 capture: which connections the programs copy payload from, how much, and
//! what the parsers redact.

use std::sync::Arc;

use sightline_bpf_common::{L7_DEFAULT_CAPTURE, L7_MAX_CAPTURE, l7_protocol};
use thiserror::Error;

use crate::l7::{L7Settings, L7Stats, Redaction};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum L7ArgsError {
    #[error("--l7-ports {value:?}: {reason}")]
    Ports { value: String, reason: String },
    #[error("--l7-capture-bytes {0}: must be 1 to {L7_MAX_CAPTURE}")]
    CaptureBytes(u32),
}

#[derive(Debug, Clone, clap::Args)]
pub struct L7Args {
    /// Server ports whose connections are parsed as L7, per protocol:
    /// `http=80,8080;kafka=9092;grpc=50051` (protocols: http, http2, grpc, kafka). Empty: none.
    #[arg(long, env = "SIGHTLINE_L7_PORTS", default_value = "")]
    pub l7_ports: String,
    /// Also parse connections on any port whose first payload looks like an HTTP/1
    /// request, the HTTP/2 preface or a Kafka request.
    #[arg(long, env = "SIGHTLINE_L7_DETECT")]
    pub l7_detect: bool,
    /// Bytes of TCP payload copied per segment for L7 parsing (at most 1024).
    #[arg(long, env = "SIGHTLINE_L7_CAPTURE_BYTES", default_value_t = L7_DEFAULT_CAPTURE)]
    pub l7_capture_bytes: u32,
    /// Remove the query of HTTP URLs.
    #[arg(long, env = "SIGHTLINE_REDACT_HTTP_URL_QUERY", default_value_t = true, action = clap::ArgAction::Set)]
    pub redact_http_url_query: bool,
    /// Remove the user info (`user:password@`) of HTTP URLs.
    #[arg(long, env = "SIGHTLINE_REDACT_HTTP_USER_INFO", default_value_t = true, action = clap::ArgAction::Set)]
    pub redact_http_user_info: bool,
    /// HTTP headers kept (all others are redacted), comma-separated.
    #[arg(long, env = "SIGHTLINE_REDACT_HTTP_HEADERS_ALLOW", value_delimiter = ',')]
    pub redact_http_headers_allow: Vec<String>,
    /// HTTP headers redacted, comma-separated.
    #[arg(long, env = "SIGHTLINE_REDACT_HTTP_HEADERS_DENY", value_delimiter = ',')]
    pub redact_http_headers_deny: Vec<String>,
    /// Redact the Kafka API key.
    #[arg(long, env = "SIGHTLINE_REDACT_KAFKA_API_KEY")]
    pub redact_kafka_api_key: bool,
    /// Where the parsers and the capture counters are counted; the agent shares it
    /// with its `/metrics` registry.
    #[arg(skip)]
    pub stats: Arc<L7Stats>,
}

impl Default for L7Args {
    fn default() -> Self {
        Self {
            l7_ports: String::new(),
            l7_detect: false,
            l7_capture_bytes: L7_DEFAULT_CAPTURE,
            redact_http_url_query: true,
            redact_http_user_info: true,
            redact_http_headers_allow: Vec::new(),
            redact_http_headers_deny: Vec::new(),
            redact_kafka_api_key: false,
            stats: Arc::default(),
        }
    }
}

/// A server port and the `l7_protocol` its connections are parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L7Port {
    pub port: u16,
    pub protocol: u8,
}

impl L7Args {
    /// Whether the programs capture anything at all.
    pub fn enabled(&self) -> Result<bool, L7ArgsError> {
        Ok(self.l7_detect || !self.ports()?.is_empty())
    }

    pub fn ports(&self) -> Result<Vec<L7Port>, L7ArgsError> {
        parse_ports(&self.l7_ports)
    }

    /// The parsers' settings: default limits, the redaction these flags ask for.
    pub fn settings(&self) -> L7Settings {
        L7Settings {
            redaction: Redaction {
                url_query: self.redact_http_url_query,
                user_info: self.redact_http_user_info,
                headers_allow: self.redact_http_headers_allow.clone(),
                headers_deny: self.redact_http_headers_deny.clone(),
                kafka_api_key: self.redact_kafka_api_key,
            },
            stats: Arc::clone(&self.stats),
            ..L7Settings::default()
        }
    }

    pub fn capture_bytes(&self) -> Result<u32, L7ArgsError> {
        if self.l7_capture_bytes == 0 || self.l7_capture_bytes as usize > L7_MAX_CAPTURE {
            return Err(L7ArgsError::CaptureBytes(self.l7_capture_bytes));
        }
        Ok(self.l7_capture_bytes)
    }
}

/// Parses `http=80,8080;kafka=9092;grpc=50051`. A port named twice must name one protocol.
pub(crate) fn parse_ports(text: &str) -> Result<Vec<L7Port>, L7ArgsError> {
    let fail = |reason: String| L7ArgsError::Ports {
        value: text.to_owned(),
        reason,
    };
    let mut out: Vec<L7Port> = Vec::new();
    for group in text.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        let (name, list) = group
            .split_once('=')
            .ok_or_else(|| fail(format!("{group:?} is not protocol=port,...")))?;
        let protocol = match name.trim().to_ascii_lowercase().as_str() {
            "http" | "http1" => l7_protocol::HTTP1,
            "http2" | "grpc" => l7_protocol::HTTP2,
            "kafka" => l7_protocol::KAFKA,
            other => return Err(fail(format!("unknown protocol {other:?} (http, http2, grpc, kafka)"))),
        };
        for port in list.split(',').map(str::trim) {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| fail(format!("{port:?} is not a port (1-65535)")))?;
            match out.iter().find(|p| p.port == port) {
                Some(known) if known.protocol != protocol => {
                    return Err(fail(format!("port {port} is given two protocols")));
                }
                Some(_) => {}
                None => out.push(L7Port { port, protocol }),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_per_protocol() {
        let ports = parse_ports("http=80,8080; kafka=9092;grpc=50051;").unwrap();
        let pairs: Vec<(u16, u8)> = ports.iter().map(|p| (p.port, p.protocol)).collect();
        assert_eq!(
            pairs,
            [
                (80, l7_protocol::HTTP1),
                (8080, l7_protocol::HTTP1),
                (9092, l7_protocol::KAFKA),
                (50051, l7_protocol::HTTP2)
            ]
        );
        assert_eq!(parse_ports("").unwrap(), []);
    }

    #[test]
    fn bad_ports_are_named() {
        let error = parse_ports("http=80;smtp=25").unwrap_err().to_string();
        assert!(
            error.contains("\"smtp\"") && error.contains("http=80;smtp=25"),
            "{error}"
        );
        let error = parse_ports("http=80,99999").unwrap_err().to_string();
        assert!(error.contains("\"99999\" is not a port"), "{error}");
        let error = parse_ports("http=0").unwrap_err().to_string();
        assert!(error.contains("\"0\" is not a port"), "{error}");
        let error = parse_ports("http").unwrap_err().to_string();
        assert!(error.contains("not protocol=port"), "{error}");
        let error = parse_ports("http=9092;kafka=9092").unwrap_err().to_string();
        assert!(error.contains("port 9092 is given two protocols"), "{error}");
    }

    #[test]
    fn capture_limit_is_checked() {
        let mut args = L7Args::default();
        assert_eq!(args.capture_bytes().unwrap(), 512);
        args.l7_capture_bytes = 1024;
        assert_eq!(args.capture_bytes().unwrap(), 1024);
        args.l7_capture_bytes = 1025;
        assert_eq!(
            args.capture_bytes().unwrap_err().to_string(),
            "--l7-capture-bytes 1025: must be 1 to 1024"
        );
        args.l7_capture_bytes = 0;
        assert!(args.capture_bytes().is_err());
    }

    #[test]
    fn redaction_defaults_remove_query_and_user_info() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            l7: L7Args,
        }
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert!(cli.l7.redact_http_url_query && cli.l7.redact_http_user_info);
        assert!(!cli.l7.redact_kafka_api_key && !cli.l7.l7_detect);
        let cli = Cli::try_parse_from([
            "x",
            "--redact-http-url-query=false",
            "--redact-http-headers-deny",
            "authorization,cookie",
            "--l7-ports",
            "http=80,8080;kafka=9092",
        ])
        .unwrap();
        assert!(!cli.l7.redact_http_url_query);
        assert_eq!(cli.l7.redact_http_headers_deny, ["authorization", "cookie"]);
        let redaction = cli.l7.settings().redaction;
        assert!(!redaction.url_query && redaction.user_info && !redaction.kafka_api_key);
        assert_eq!(redaction.headers_deny, ["authorization", "cookie"]);
        assert_eq!(cli.l7.ports().unwrap().len(), 3);
    }
}
