//! The node's own view of itself: the addresses on its interfaces, from netlink,
//! kept current. A Node object lists only the addresses the kubelet reports; a CNI
//! bridge gateway or a second uplink is this node too, and flows from it are
//! `reserved:host`, not `world`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::constants::{RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};

use crate::enrich::Index;

/// One configured address: the same IP on two interfaces counts twice, so removing
/// it from one keeps it.
type Configured = (u32, IpAddr);

fn configured(message: &AddressMessage) -> Option<Configured> {
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            // On point-to-point links `Address` is the far end; `Local` is ours.
            AddressAttribute::Local(ip) => return Some((message.header.index, *ip)),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    address.map(|ip| (message.header.index, ip))
}

fn publish(index: &Index, addresses: &HashSet<Configured>) {
    index.set_host_addresses(addresses.iter().map(|(_, ip)| *ip));
}

/// Subscribes before dumping, so no change between the two is missed, then keeps
/// `index` told until the connection ends.
pub async fn follow(index: Arc<Index>) -> std::io::Result<()> {
    let (mut connection, handle, mut messages) = rtnetlink::new_connection()?;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))?;
    tokio::spawn(connection);
    let mut addresses = HashSet::new();
    let mut dump = handle.address().get().execute();
    while let Some(message) = dump.try_next().await.map_err(std::io::Error::other)? {
        addresses.extend(configured(&message));
    }
    publish(&index, &addresses);
    while let Some((message, _)) = messages.next().await {
        let changed = match message.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(added)) => {
                configured(&added).is_some_and(|address| addresses.insert(address))
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(removed)) => {
                configured(&removed).is_some_and(|address| addresses.remove(&address))
            }
            _ => false,
        };
        if changed {
            publish(&index, &addresses);
        }
    }
    Ok(())
}

/// Runs [`follow`] and logs why it stopped; flows keep the last addresses known.
pub async fn follow_logged(index: Arc<Index>) {
    if let Err(error) = follow(index).await {
        tracing::warn!(%error, "node addresses are not followed; only Node objects name this host");
    }
}
