//! Addresses of Hubble servers as peers announce them and operators type them.
//!
//! The forms follow Hubble's client: `unix:///path` or a path ending in `.sock` is a
//! unix socket, `host:port` is TCP, and a bare IP means the default port 4244.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Port of a Hubble server when an address names none.
pub const DEFAULT_HUBBLE_PORT: u16 = 4244;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// Where the relay dials an agent, parsed from a peer announcement or `--peers`.
pub enum PeerAddress {
    /// A unix socket path (`unix://...` or an absolute path).
    Unix(PathBuf),
    /// `host:port`, with IPv6 hosts in brackets, ready for an `http://` URI.
    Tcp(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid peer address {address:?}: {reason}")]
/// A peer address that cannot be dialled, with the text as given.
pub struct AddressError {
    /// The address as given.
    pub address: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PeerAddress {
    /// Parses `unix://path`, `host`, `host:port` or `[v6]:port`; a missing port is Hubble's 4244.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let error = |reason| AddressError {
            address: text.to_owned(),
            reason,
        };
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(error("empty unix socket path"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(text)));
        }
        if text.is_empty() {
            return Err(error("empty"));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Tcp(match ip {
                IpAddr::V4(v4) => format!("{v4}:{DEFAULT_HUBBLE_PORT}"),
                IpAddr::V6(v6) => format!("[{v6}]:{DEFAULT_HUBBLE_PORT}"),
            }));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(|| error("expected host:port"))?;
        if host.is_empty() {
            return Err(error("missing host"));
        }
        port.parse::<u16>()
            .map_err(|_| error("port is not a number from 0 to 65535"))?;
        Ok(Self::Tcp(text.to_owned()))
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(host_port) => f.write_str(host_port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hubbles_address_forms() {
        let unix = |p: &str| Ok(PeerAddress::Unix(PathBuf::from(p)));
        assert_eq!(
            PeerAddress::parse("unix:///var/run/cilium/hubble.sock"),
            unix("/var/run/cilium/hubble.sock")
        );
        assert_eq!(PeerAddress::parse("/run/h.sock"), unix("/run/h.sock"));
        assert_eq!(
            PeerAddress::parse("10.0.0.7:4244"),
            Ok(PeerAddress::Tcp("10.0.0.7:4244".into()))
        );
        assert_eq!(
            PeerAddress::parse("10.0.0.7"),
            Ok(PeerAddress::Tcp("10.0.0.7:4244".into()))
        );
        assert_eq!(
            PeerAddress::parse("fd00::7"),
            Ok(PeerAddress::Tcp("[fd00::7]:4244".into()))
        );
        assert_eq!(
            PeerAddress::parse("[fd00::7]:80"),
            Ok(PeerAddress::Tcp("[fd00::7]:80".into()))
        );
        assert_eq!(
            PeerAddress::parse("hubble-peer.kube-system.svc:443"),
            Ok(PeerAddress::Tcp("hubble-peer.kube-system.svc:443".into()))
        );
    }

    #[test]
    fn rejects_what_cannot_be_dialled_with_a_reason() {
        for (bad, reason) in [
            ("", "empty"),
            ("node-a", "expected host:port"),
            ("node-a:http", "port is not a number from 0 to 65535"),
            (":4244", "missing host"),
            ("unix://", "empty unix socket path"),
        ] {
            assert_eq!(
                PeerAddress::parse(bad),
                Err(AddressError {
                    address: bad.into(),
                    reason
                }),
                "{bad}"
            );
        }
    }
}
