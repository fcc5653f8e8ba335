//! Which interfaces to observe, learned from rtnetlink: a dump at start, then link
//! events, so interfaces that appear or vanish are followed without a restart.

use futures::TryStreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};

use super::decode::InterfaceRole;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub is_veth: bool,
    /// A veth whose peer lives in another network namespace: a pod's host side.
    pub peer_elsewhere: bool,
    /// That namespace's nsid, as our namespace numbers it.
    pub peer_netns_id: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkChange {
    Present(Link),
    Gone(u32),
}

pub(crate) fn link_from_message(message: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut is_veth = false;
    let mut peer_netns_id = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::LinkNetNsId(id) => peer_netns_id = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                is_veth |= infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
            }
            _ => {}
        }
    }
    Some(Link {
        index: message.header.index,
        name: name?,
        is_veth,
        peer_elsewhere: peer_netns_id.is_some() && is_veth,
        peer_netns_id: peer_netns_id.filter(|_| is_veth),
    })
}

/// A netlink connection subscribed to link events, plus a dump of current links.
/// Subscribing before dumping means no change between the two is missed.
pub(crate) async fn watch_links() -> std::io::Result<(Vec<Link>, tokio::sync::mpsc::UnboundedReceiver<LinkChange>)> {
    let (mut connection, handle, mut messages) = rtnetlink::new_connection()?;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))?;
    tokio::spawn(connection);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some((message, _)) = messages.next().await {
            let change = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    link_from_message(&link).map(LinkChange::Present)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    Some(LinkChange::Gone(link.header.index))
                }
                _ => None,
            };
            if let Some(change) = change
                && tx.send(change).is_err()
            {
                break;
            }
        }
    });
    let mut links = Vec::new();
    let mut dump = handle.link().get().execute();
    while let Some(message) = dump.try_next().await.map_err(std::io::Error::other)? {
        links.extend(link_from_message(&message));
    }
    Ok((links, rx))
}

/// The `--interfaces` / `--xdp-interfaces` choice.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    pub tc_patterns: Vec<String>,
    pub xdp_patterns: Vec<String>,
}

impl Selector {
    /// The role to observe this link with at TC, or `None` to leave it alone.
    pub(crate) fn tc_role(&self, link: &Link) -> Option<InterfaceRole> {
        let role = if link.peer_elsewhere {
            InterfaceRole::Endpoint
        } else {
            InterfaceRole::Uplink
        };
        if self.tc_patterns.is_empty() {
            return link.peer_elsewhere.then_some(role);
        }
        self.tc_patterns
            .iter()
            .any(|p| glob_match(p, &link.name))
            .then_some(role)
    }

    pub(crate) fn wants_xdp(&self, link: &Link) -> bool {
        self.xdp_patterns.iter().any(|p| glob_match(p, &link.name))
    }
}

/// Shell-style matching with `*` and `?`.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("veth*", "veth1234"));
        assert!(glob_match("eth?", "eth0"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("eth?", "eth10"));
        assert!(!glob_match("lxc*", "veth0"));
        assert!(glob_match("a*b*c", "aXXbYc"));
    }
}
