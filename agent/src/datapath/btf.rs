//! Just enough of a BTF reader to learn, from the running kernel, the `sk_buff` field
//! offsets the drop program needs and the names of `enum skb_drop_reason`.

use std::collections::HashMap;

use sightline_bpf_common::config::SkbOffsets;
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum BtfError {
    #[error("reading kernel BTF: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel BTF is malformed: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no {0}")]
    Missing(String),
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    /// size, or the referenced type id
    size_or_type: u32,
    /// Offset of the kind-specific data that follows the common header.
    extra: usize,
    vlen: usize,
}

pub(crate) struct KernelBtf {
    data: Vec<u8>,
    strings: usize,
    strings_len: usize,
    types: Vec<Type>,
}

fn u32_at(data: &[u8], off: usize) -> Result<u32, BtfError> {
    let bytes = data.get(off..off + 4).ok_or(BtfError::Malformed("truncated"))?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

impl KernelBtf {
    pub(crate) fn from_sys_fs() -> Result<Self, BtfError> {
        Self::parse(std::fs::read("/sys/kernel/btf/vmlinux")?)
    }

    pub(crate) fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            return Err(BtfError::Malformed("bad magic (or not little-endian)"));
        }
        let hdr_len = u32_at(&data, 4)? as usize;
        let type_off = hdr_len + u32_at(&data, 8)? as usize;
        let type_len = u32_at(&data, 12)? as usize;
        let strings = hdr_len + u32_at(&data, 16)? as usize;
        let strings_len = u32_at(&data, 20)? as usize;
        // Type id 0 is `void`.
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            kind_flag: false,
            size_or_type: 0,
            extra: 0,
            vlen: 0,
        }];
        let mut off = type_off;
        while off < type_off + type_len {
            let name_off = u32_at(&data, off)?;
            let info = u32_at(&data, off + 4)?;
            let size_or_type = u32_at(&data, off + 8)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = off + 12;
            let trailing = match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 | 15 | 19 => vlen * 12,
                6 | 13 => vlen * 8,
                _ => 0,
            };
            types.push(Type {
                name_off,
                kind,
                kind_flag: info >> 31 == 1,
                size_or_type,
                extra,
                vlen,
            });
            off = extra + trailing;
        }
        Ok(Self {
            data,
            strings,
            strings_len,
            types,
        })
    }

    fn name(&self, name_off: u32) -> &str {
        let start = self.strings + name_off as usize;
        let end = self.strings + self.strings_len;
        let Some(bytes) = self.data.get(start..end) else {
            return "";
        };
        let len = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..len]).unwrap_or("")
    }

    fn find(&self, name: &str, kind: u32) -> Result<usize, BtfError> {
        self.types
            .iter()
            .position(|t| t.kind == kind && self.name(t.name_off) == name)
            .ok_or_else(|| BtfError::Missing(name.to_owned()))
    }

    fn strip(&self, mut id: usize) -> usize {
        for _ in 0..16 {
            match self.types.get(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type as usize;
                }
                _ => break,
            }
        }
        id
    }

    /// Byte offset of `member` in the struct, looking into anonymous unions and structs.
    fn member_offset(&self, id: usize, member: &str) -> Option<u32> {
        let t = self.types.get(id)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return None;
        }
        for i in 0..t.vlen {
            let m = t.extra + i * 12;
            let name_off = u32_at(&self.data, m).ok()?;
            let member_type = u32_at(&self.data, m + 4).ok()? as usize;
            let raw = u32_at(&self.data, m + 8).ok()?;
            let bits = if t.kind_flag { raw & 0x00ff_ffff } else { raw };
            let name = self.name(name_off);
            if name == member {
                return Some(bits / 8);
            }
            if name.is_empty()
                && let Some(inner) = self.member_offset(self.strip(member_type), member)
            {
                return Some(bits / 8 + inner);
            }
        }
        None
    }

    fn offset(&self, struct_name: &str, member: &str) -> Result<u32, BtfError> {
        let id = self.find(struct_name, KIND_STRUCT)?;
        self.member_offset(id, member)
            .ok_or_else(|| BtfError::Missing(format!("{struct_name}.{member}")))
    }

    pub(crate) fn skb_offsets(&self) -> Result<SkbOffsets, BtfError> {
        Ok(SkbOffsets {
            head: self.offset("sk_buff", "head")?,
            len: self.offset("sk_buff", "len")?,
            network_header: self.offset("sk_buff", "network_header")?,
            transport_header: self.offset("sk_buff", "transport_header")?,
            dev: self.offset("sk_buff", "dev")?,
            net_device_ifindex: self.offset("net_device", "ifindex")?,
            protocol: self.offset("sk_buff", "protocol")?,
            // Without network namespaces (CONFIG_NET_NS off) there is one namespace
            // and nothing to filter: 0 turns the filter off.
            net_device_nd_net: self.offset("net_device", "nd_net").unwrap_or(0)
                + self.offset("possible_net_t", "net").unwrap_or(0),
            net_ns_inum: match (self.offset("net", "ns"), self.offset("ns_common", "inum")) {
                (Ok(ns), Ok(inum)) if self.offset("net_device", "nd_net").is_ok() => ns + inum,
                _ => 0,
            },
            _pad: 0,
        })
    }

    /// `enum skb_drop_reason`, as value -> name without the `SKB_DROP_REASON_` prefix.
    pub(crate) fn drop_reasons(&self) -> Result<HashMap<u32, String>, BtfError> {
        let id = self
            .find("skb_drop_reason", KIND_ENUM)
            .or_else(|_| self.find("skb_drop_reason", KIND_ENUM64))?;
        let t = &self.types[id];
        let stride = if t.kind == KIND_ENUM { 8 } else { 12 };
        let mut names = HashMap::with_capacity(t.vlen);
        for i in 0..t.vlen {
            let m = t.extra + i * stride;
            let name = self.name(u32_at(&self.data, m)?);
            let value = u32_at(&self.data, m + 4)?;
            let short = name
                .strip_prefix("SKB_DROP_REASON_")
                .or_else(|| name.strip_prefix("SKB_"))
                .unwrap_or(name);
            names.insert(value, short.to_owned());
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_kernel_offsets_and_drop_reasons() {
        let btf = KernelBtf::from_sys_fs().expect("kernel BTF");
        let offsets = btf.skb_offsets().expect("sk_buff offsets");
        assert!(offsets.head > 0 && offsets.dev < offsets.head);
        assert_ne!(offsets.network_header, offsets.transport_header);
        assert!(offsets.net_device_nd_net > 0 && offsets.net_ns_inum > 0, "{offsets:?}");
        let reasons = btf.drop_reasons().expect("drop reasons");
        assert_eq!(reasons.get(&2).map(String::as_str), Some("NOT_SPECIFIED"));
        assert!(reasons.values().any(|n| n == "NETFILTER_DROP"));
    }
}
