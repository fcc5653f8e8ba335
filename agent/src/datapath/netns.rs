//! Which network namespaces' drops this agent reports: its own and those of the pods
//! behind the veths it observes. `kfree_skb` fires for every namespace of the kernel,
//! and several agents can share one kernel (kind and k3d nodes are containers, the
//! demo's nodes are namespaces): without this, every agent reported every node's drops.
//!
//! A pod veth tells its peer's namespace only as an nsid (local to our namespace);
//! the kernel program compares namespace inode numbers. So the namespace files the
//! node has (`ip netns`, CNI and container runtimes, processes' `/proc/<pid>/ns/net`)
//! are asked for their nsid, and those that match a veth peer are watched by inode.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData};
use futures::StreamExt;
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use sightline_bpf_common::config::WATCHED_NETNS;

use super::DatapathError;

/// Directories where runtimes keep bind-mounted namespace files.
const NAMESPACE_DIRS: [&str; 4] = [
    "/run/netns",
    "/var/run/netns",
    "/run/docker/netns",
    "/var/run/docker/netns",
];

/// The kernel's set of watched namespaces and what is known about namespace files.
pub(super) struct WatchedNamespaces {
    map: BpfHashMap<MapData, u32, u8>,
    /// Inode → nsid (`None`: no nsid here, so no veth of ours leads to it).
    resolved: HashMap<u64, Option<i32>>,
    watched: HashSet<u32>,
    netlink: rtnetlink::Handle,
}

impl WatchedNamespaces {
    /// Takes the map out of `ebpf` and watches this process's own namespace.
    pub(super) fn new(ebpf: &mut Ebpf) -> Result<Self, DatapathError> {
        let map = ebpf
            .take_map(WATCHED_NETNS)
            .ok_or(DatapathError::MissingMap("WATCHED_NETNS"))?;
        let (connection, netlink, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        let mut this = Self {
            map: BpfHashMap::try_from(map)?,
            resolved: HashMap::new(),
            watched: HashSet::new(),
            netlink,
        };
        let own = std::fs::metadata("/proc/self/ns/net")?.ino();
        this.watch(own)?;
        Ok(this)
    }

    /// Watches the namespaces whose nsids `peer_nsids` name (the peers of the
    /// veths observed). Cheap when nothing is new: known namespace files are not asked again.
    pub(super) async fn follow_peers(&mut self, peer_nsids: &HashSet<i32>) {
        let missing = |this: &Self| {
            peer_nsids
                .iter()
                .any(|nsid| !this.resolved.values().any(|known| *known == Some(*nsid)))
        };
        if !missing(self) {
            return;
        }
        let mut files = namespace_files(NAMESPACE_DIRS.iter().map(Path::new));
        self.resolve(&mut files).await;
        if missing(self) {
            // Not bind-mounted anywhere: a process inside still holds it.
            let mut processes = process_namespaces();
            self.resolve(&mut processes).await;
        }
        let wanted: Vec<u64> = self
            .resolved
            .iter()
            .filter(|(_, nsid)| nsid.is_some_and(|id| peer_nsids.contains(&id)))
            .map(|(inode, _)| *inode)
            .collect();
        for inode in wanted {
            if let Err(error) = self.watch(inode) {
                tracing::warn!(%error, inode, "cannot watch a pod network namespace for drops");
            }
        }
    }

    fn watch(&mut self, inode: u64) -> Result<(), DatapathError> {
        let Ok(inum) = u32::try_from(inode) else {
            return Ok(());
        };
        if self.watched.insert(inum) {
            self.map.insert(inum, 1, 0)?;
            tracing::debug!(inum, "reporting drops in network namespace");
        }
        Ok(())
    }

    async fn resolve(&mut self, files: &mut Vec<(u64, PathBuf)>) {
        files.retain(|(inode, _)| !self.resolved.contains_key(inode));
        for (inode, path) in files.drain(..) {
            let nsid = match nsid_of(&mut self.netlink, &path).await {
                Ok(nsid) => nsid,
                Err(error) => {
                    tracing::debug!(path = %path.display(), %error, "namespace file not usable");
                    continue;
                }
            };
            self.resolved.insert(inode, nsid);
        }
    }
}

/// Namespace files in `dirs`, one per namespace (by inode).
fn namespace_files<'a>(dirs: impl Iterator<Item = &'a Path>) -> Vec<(u64, PathBuf)> {
    let mut seen = HashSet::new();
    dirs.filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let inode = std::fs::metadata(&path).ok()?.ino();
            seen.insert(inode).then_some((inode, path))
        })
        .collect()
}

/// `/proc/<pid>/ns/net` of every visible process, one per namespace.
fn process_namespaces() -> Vec<(u64, PathBuf)> {
    let mut seen = HashSet::new();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|entry| {
            let path = entry.path().join("ns/net");
            let inode = std::fs::metadata(&path).ok()?.ino();
            seen.insert(inode).then_some((inode, path))
        })
        .collect()
}

/// The nsid our namespace has for the namespace of `path` (`None`: not assigned).
async fn nsid_of(netlink: &mut rtnetlink::Handle, path: &Path) -> std::io::Result<Option<i32>> {
    let file = std::fs::File::open(path)?;
    let mut message = NsidMessage::default();
    message.attributes = vec![NsidAttribute::Fd(file.as_raw_fd() as u32)];
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(message));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let mut responses = netlink.request(request).map_err(std::io::Error::other)?;
    let mut nsid = None;
    while let Some(response) = responses.next().await {
        match response.payload {
            NetlinkPayload::Error(error) if error.code.is_some() => {
                return Err(std::io::Error::other(error.to_string()));
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(answer)) => {
                nsid = answer.attributes.iter().find_map(|attribute| match attribute {
                    NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    // The file stays open until the kernel answered about it.
    drop(file);
    Ok(nsid)
}
