//! Attaching the classifiers and the XDP program to interfaces, and taking every
//! attachment (and any clsact qdisc we created) away again.

use std::collections::HashMap;

use aya::Ebpf;
use aya::programs::links::LinkOrder;
use aya::programs::tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};

use super::loader::{TC_EGRESS, TC_INGRESS, XDP, program_mut};
use super::{DatapathError, TcAttachMode};

#[derive(Debug, Default)]
struct Attached {
    name: String,
    tc: Option<(SchedClassifierLinkId, SchedClassifierLinkId)>,
    xdp: Option<XdpLinkId>,
    created_clsact: bool,
}

/// Every attachment this agent made, by interface index.
#[derive(Debug, Default)]
pub struct Attachments {
    by_ifindex: HashMap<u32, Attached>,
    mode: TcAttachMode,
}

impl Attachments {
    pub(crate) fn new(mode: TcAttachMode) -> Self {
        Self {
            by_ifindex: HashMap::new(),
            mode,
        }
    }

    pub(crate) fn has_tc(&self, ifindex: u32) -> bool {
        self.by_ifindex.get(&ifindex).is_some_and(|a| a.tc.is_some())
    }

    pub(crate) fn has_xdp(&self, ifindex: u32) -> bool {
        self.by_ifindex.get(&ifindex).is_some_and(|a| a.xdp.is_some())
    }

    /// Attaches both classifiers to `name`: TCX where the kernel has it; otherwise a
    /// clsact qdisc and netlink filters (`--tc-attach` forces one). Attaching twice
    /// is a no-op.
    pub fn attach_tc(&mut self, ebpf: &mut Ebpf, ifindex: u32, name: &str) -> Result<(), DatapathError> {
        let entry = self.by_ifindex.entry(ifindex).or_default();
        entry.name = name.to_owned();
        if entry.tc.is_some() {
            return Ok(());
        }
        if self.mode == TcAttachMode::Netlink {
            return self.attach_clsact(ebpf, ifindex, name);
        }
        let tcx = |ebpf: &mut Ebpf, program: &'static str, kind| -> Result<SchedClassifierLinkId, DatapathError> {
            let p: &mut SchedClassifier = program_mut(ebpf, program)?;
            Ok(p.attach_with_options(name, kind, TcAttachOptions::TcxOrder(LinkOrder::default()))?)
        };
        let ingress = match tcx(ebpf, TC_INGRESS, TcAttachType::Ingress) {
            Ok(ingress) => ingress,
            Err(error) if self.mode == TcAttachMode::Tcx => return Err(error),
            Err(error) => {
                tracing::debug!(%error, interface = name, "TCX attach failed; falling back to clsact");
                return self.attach_clsact(ebpf, ifindex, name);
            }
        };
        let egress = match tcx(ebpf, TC_EGRESS, TcAttachType::Egress) {
            Ok(egress) => egress,
            Err(error) => {
                let p: &mut SchedClassifier = program_mut(ebpf, TC_INGRESS)?;
                let _ = p.detach(ingress);
                return Err(error);
            }
        };
        entry.tc = Some((ingress, egress));
        Ok(())
    }

    fn attach_clsact(&mut self, ebpf: &mut Ebpf, ifindex: u32, name: &str) -> Result<(), DatapathError> {
        let created = match tc::qdisc_add_clsact(name) {
            Ok(()) => true,
            Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => false,
            Err(error) => return Err(error.into()),
        };
        let attach = |ebpf: &mut Ebpf, program: &'static str, kind| -> Result<SchedClassifierLinkId, DatapathError> {
            let p: &mut SchedClassifier = program_mut(ebpf, program)?;
            Ok(p.attach_with_options(name, kind, TcAttachOptions::Netlink(NlOptions::default()))?)
        };
        let ingress = attach(ebpf, TC_INGRESS, TcAttachType::Ingress)?;
        let egress = attach(ebpf, TC_EGRESS, TcAttachType::Egress)?;
        let entry = self.by_ifindex.entry(ifindex).or_default();
        entry.tc = Some((ingress, egress));
        entry.created_clsact = created;
        Ok(())
    }

    /// Native XDP where the driver supports it, generic otherwise.
    pub(crate) fn attach_xdp(&mut self, ebpf: &mut Ebpf, ifindex: u32, name: &str) -> Result<(), DatapathError> {
        let entry = self.by_ifindex.entry(ifindex).or_default();
        entry.name = name.to_owned();
        if entry.xdp.is_some() {
            return Ok(());
        }
        let p: &mut Xdp = program_mut(ebpf, XDP)?;
        let id = match p.attach(name, XdpMode::Driver) {
            Ok(id) => id,
            Err(_) => p.attach(name, XdpMode::Skb)?,
        };
        entry.xdp = Some(id);
        Ok(())
    }

    /// Forgets an interface that vanished; the kernel has already dropped its links,
    /// so detach errors are expected and ignored.
    pub(crate) fn forget(&mut self, ebpf: &mut Ebpf, ifindex: u32) -> Option<String> {
        let attached = self.by_ifindex.remove(&ifindex)?;
        Some(detach(ebpf, attached))
    }

    /// Takes the classifiers off an interface the configuration no longer selects;
    /// an XDP program on it stays. Returns the interface's name.
    pub(crate) fn detach_tc(&mut self, ebpf: &mut Ebpf, ifindex: u32) -> Option<String> {
        let entry = self.by_ifindex.get_mut(&ifindex)?;
        let tc = entry.tc.take()?;
        let name = detach(
            ebpf,
            Attached {
                name: entry.name.clone(),
                tc: Some(tc),
                xdp: None,
                created_clsact: false,
            },
        );
        if entry.xdp.is_none() && !entry.created_clsact {
            self.by_ifindex.remove(&ifindex);
        }
        Some(name)
    }

    /// Detaches every program this agent attached and deletes the clsact qdiscs it
    /// created (ones that were there before stay). Failures are logged, not returned:
    /// at shutdown there is nothing better to do.
    pub(crate) async fn detach_all(&mut self, ebpf: &mut Ebpf) {
        let mut created_qdiscs = Vec::new();
        for (ifindex, attached) in self.by_ifindex.drain() {
            let created = attached.created_clsact;
            let name = detach(ebpf, attached);
            if created {
                created_qdiscs.push((ifindex, name));
            }
        }
        for (ifindex, name) in created_qdiscs {
            if let Err(error) = delete_clsact(ifindex).await {
                tracing::warn!(%error, interface = name, "could not remove the clsact qdisc we added");
            }
        }
    }
}

/// Detaches everything of one interface and returns its name.
fn detach(ebpf: &mut Ebpf, attached: Attached) -> String {
    if let Some((ingress, egress)) = attached.tc {
        for (program, id) in [(TC_INGRESS, ingress), (TC_EGRESS, egress)] {
            if let Ok(p) = program_mut::<SchedClassifier>(ebpf, program)
                && let Err(error) = p.detach(id)
            {
                tracing::debug!(%error, interface = attached.name, "TC detach");
            }
        }
    }
    if let Some(id) = attached.xdp
        && let Ok(p) = program_mut::<Xdp>(ebpf, XDP)
        && let Err(error) = p.detach(id)
    {
        tracing::debug!(%error, interface = attached.name, "XDP detach");
    }
    attached.name
}

async fn delete_clsact(ifindex: u32) -> std::io::Result<()> {
    use rtnetlink::packet_route::tc::TcHandle;
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let task = tokio::spawn(connection);
    let mut request = handle.qdisc().del(ifindex as i32);
    request.message_mut().header.parent = TcHandle::CLSACT;
    request.message_mut().header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    let result = request.execute().await.map_err(std::io::Error::other);
    task.abort();
    result
}
