//! IP filter values: plain addresses (compared as strings, as Hubble does) and CIDRs.

use std::net::IpAddr;

use super::FilterError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Prefix {
    addr: IpAddr,
    len: u8,
}

fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl Prefix {
    pub(super) fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= bits(addr).1).then_some(Self { addr, len })
    }

    pub(super) fn contains(&self, addr: IpAddr) -> bool {
        let (net, width) = bits(self.addr);
        let (candidate, candidate_width) = bits(addr);
        if width != candidate_width {
            return false;
        }
        let shift = u32::from(width - self.len);
        shift >= u32::from(width) || (net >> shift) == (candidate >> shift)
    }

    pub(super) fn contains_prefix(&self, inner: &Prefix) -> bool {
        inner.len >= self.len && self.contains(inner.addr)
    }
}

/// The values of one IP field: OR over exact addresses and prefixes.
#[derive(Debug, Clone, Default)]
pub(crate) struct IpSet {
    exact: Vec<IpAddr>,
    prefixes: Vec<Prefix>,
}

impl IpSet {
    pub(crate) fn parse(field: &'static str, values: &[String]) -> Result<Self, FilterError> {
        let mut set = Self::default();
        for value in values {
            if let Some((addr, len)) = value.split_once('/') {
                let prefix = addr
                    .parse()
                    .ok()
                    .zip(len.parse().ok())
                    .and_then(|(addr, len)| Prefix::new(addr, len))
                    .ok_or_else(|| FilterError::invalid(field, value, "not a valid CIDR"))?;
                set.prefixes.push(prefix);
            } else {
                let addr = value
                    .parse::<IpAddr>()
                    .map_err(|_| FilterError::invalid(field, value, "not a valid IP address"))?;
                set.exact.push(addr);
            }
        }
        Ok(set)
    }

    pub(crate) fn merge(&mut self, other: IpSet) {
        self.exact.extend(other.exact);
        self.prefixes.extend(other.prefixes);
    }

    /// Addresses compare as addresses, so "fd00::1" matches "fd00:0::1".
    pub(crate) fn matches(&self, addr: IpAddr) -> bool {
        self.exact.contains(&addr) || self.prefixes.iter().any(|p| p.contains(addr))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exact_and_prefix_matching() {
        let set = IpSet::parse(
            "source_ip",
            &["10.0.0.1".into(), "192.168.0.0/16".into(), "fd00::/8".into()],
        )
        .unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(set.matches(ip("10.0.0.1")));
        assert!(!set.matches(ip("10.0.0.2")));
        assert!(set.matches(ip("192.168.4.4")));
        assert!(set.matches(ip("fd12::1")));
        assert!(IpSet::parse("source_ip", &["10.0.0.0/33".into()]).is_err());
        assert!(IpSet::parse("source_ip", &["nope".into()]).is_err());
        let all = IpSet::parse("source_ip", &["0.0.0.0/0".into()]).unwrap();
        assert!(all.matches(ip("1.2.3.4")));
        assert!(!all.matches(ip("::1")));
        let v6 = IpSet::parse("source_ip", &["fd00:0::1".into()]).unwrap();
        assert!(v6.matches(ip("fd00::1")), "the same address written differently");
    }
}
