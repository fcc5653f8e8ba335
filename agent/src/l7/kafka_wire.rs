//! Kafka wire decoding of what Hubble shows: the request header, the topic of Produce and
//! Fetch requests and the error code of their responses, in classic and flexible
//! (compact, tagged-field) versions. Reads only the message's captured prefix; `None`
//! means the prefix ended early or the bytes are not valid for the version.

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;
const API_VERSIONS: i16 = 18;

/// Request header fields (header v1/v2), with the topic when the body names one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// `None` when the API has no topic or the version names topics by id only.
    pub topic: Option<String>,
}

/// Hubble's names for api keys (Cilium's `ReverseAPIKeyMap`); others print as a number.
pub(crate) fn api_key_name(api_key: i16) -> String {
    const NAMES: [&str; 34] = [
        "produce",
        "fetch",
        "offsets",
        "metadata",
        "leaderandisr",
        "stopreplica",
        "updatemetadata",
        "controlledshutdown",
        "offsetcommit",
        "offsetfetch",
        "findcoordinator",
        "joingroup",
        "heartbeat",
        "leavegroup",
        "syncgroup",
        "describegroups",
        "listgroups",
        "saslhandshake",
        "apiversions",
        "createtopics",
        "deletetopics",
        "deleterecords",
        "initproducerid",
        "offsetforleaderepoch",
        "addpartitionstotxn",
        "addoffsetstotxn",
        "endtxn",
        "writetxnmarkers",
        "txnoffsetcommit",
        "describeacls",
        "createacls",
        "deleteacls",
        "describeconfigs",
        "alterconfigs",
    ];
    usize::try_from(api_key)
        .ok()
        .and_then(|index| NAMES.get(index))
        .map_or_else(|| api_key.to_string(), |name| (*name).to_owned())
}

/// From which version an API uses compact encodings and tagged fields (KIP-482).
fn is_flexible(api_key: i16, api_version: i16) -> bool {
    match api_key {
        PRODUCE => api_version >= 9,
        FETCH => api_version >= 12,
        API_VERSIONS => api_version >= 3,
        _ => false,
    }
}

/// Reads the request header and, for Produce and Fetch, the first topic's name.
/// `message` is the request after its length prefix.
pub(crate) fn request_head(message: &[u8]) -> Option<RequestHead> {
    let mut r = Reader::new(message);
    let api_key = r.i16()?;
    let api_version = r.i16()?;
    let correlation_id = r.i32()?;
    // The client_id stays a classic nullable string even in flexible header v2.
    let client_id = r.nullable_string()?;
    let mut head = RequestHead {
        api_key,
        api_version,
        correlation_id,
        client_id,
        topic: None,
    };
    let flexible = is_flexible(api_key, api_version);
    if flexible {
        r.skip_tagged_fields()?;
    }
    head.topic = match api_key {
        PRODUCE => produce_topic(&mut r, api_version, flexible),
        FETCH => fetch_topic(&mut r, api_version, flexible),
        _ => None,
    };
    Some(head)
}

/// Whether this parser reads topic names for the version (newer ones carry topic ids).
pub(crate) fn topic_readable(api_key: i16, api_version: i16) -> bool {
    match api_key {
        PRODUCE => api_version <= 12,
        FETCH => api_version <= 12,
        _ => true,
    }
}

fn produce_topic(r: &mut Reader<'_>, version: i16, flexible: bool) -> Option<String> {
    if version >= 3 {
        r.string_of(flexible)?; // transactional_id
    }
    r.skip(2 + 4)?; // acks, timeout_ms
    if r.array_len(flexible)? == 0 || version > 12 {
        return None;
    }
    r.string_of(flexible)?
}

fn fetch_topic(r: &mut Reader<'_>, version: i16, flexible: bool) -> Option<String> {
    if version <= 14 {
        r.skip(4)?; // replica_id
    }
    r.skip(4 + 4)?; // max_wait_ms, min_bytes
    if version >= 3 {
        r.skip(4)?; // max_bytes
    }
    if version >= 4 {
        r.skip(1)?; // isolation_level
    }
    if version >= 7 {
        r.skip(4 + 4)?; // session_id, session_epoch
    }
    if r.array_len(flexible)? == 0 || version > 12 {
        return None;
    }
    r.string_of(flexible)?
}

/// The correlation id a response starts with.
pub(crate) fn response_correlation_id(message: &[u8]) -> Option<i32> {
    Reader::new(message).i32()
}

/// The error code of a response to the given request: ApiVersions' top-level one, Fetch's
/// top-level one (v7+) or else its first partition's, Produce's first partition's; 0 for
/// other APIs and when the captured prefix does not reach it.
pub(crate) fn response_error_code(message: &[u8], api_key: i16, api_version: i16) -> i16 {
    let mut r = Reader::new(message);
    let mut read = || -> Option<i16> {
        r.i32()?; // correlation_id
        let flexible = is_flexible(api_key, api_version);
        // ApiVersions answers with response header v0 whatever its version.
        if flexible && api_key != API_VERSIONS {
            r.skip_tagged_fields()?;
        }
        match api_key {
            API_VERSIONS => r.i16(),
            PRODUCE => {
                if r.array_len(flexible)? == 0 {
                    return Some(0);
                }
                topic_ref(&mut r, api_version > 12, flexible)?;
                if r.array_len(flexible)? == 0 {
                    return Some(0);
                }
                r.skip(4)?; // partition index
                r.i16()
            }
            FETCH => {
                if api_version >= 1 {
                    r.skip(4)?; // throttle_time_ms
                }
                if api_version >= 7 {
                    let top = r.i16()?;
                    if top != 0 {
                        return Some(top);
                    }
                    r.skip(4)?; // session_id
                }
                if r.array_len(flexible)? == 0 {
                    return Some(0);
                }
                topic_ref(&mut r, api_version > 12, flexible)?;
                if r.array_len(flexible)? == 0 {
                    return Some(0);
                }
                r.skip(4)?; // partition_index
                r.i16()
            }
            _ => Some(0),
        }
    };
    read().unwrap_or(0)
}

fn topic_ref(r: &mut Reader<'_>, by_id: bool, flexible: bool) -> Option<()> {
    if by_id {
        r.skip(16)
    } else {
        r.string_of(flexible).map(drop)
    }
}

/// A bounds-checked cursor over big-endian Kafka primitives.
struct Reader<'b> {
    bytes: &'b [u8],
}

impl<'b> Reader<'b> {
    fn new(bytes: &'b [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, len: usize) -> Option<&'b [u8]> {
        if self.bytes.len() < len {
            return None;
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(head)
    }

    fn skip(&mut self, len: usize) -> Option<()> {
        self.take(len).map(drop)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Option<u32> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u32::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// int16 length, -1 for null.
    fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let bytes = self.take(usize::try_from(len).ok()?)?;
        Some(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// uvarint length + 1, 0 for null.
    fn compact_nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.uvarint()?;
        if len == 0 {
            return Some(None);
        }
        let bytes = self.take(usize::try_from(len - 1).ok()?)?;
        Some(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn string_of(&mut self, flexible: bool) -> Option<Option<String>> {
        if flexible {
            self.compact_nullable_string()
        } else {
            self.nullable_string()
        }
    }

    /// Element count of an array: int32, or uvarint count + 1 when compact (0 = null).
    fn array_len(&mut self, flexible: bool) -> Option<u32> {
        if flexible {
            Some(self.uvarint()?.saturating_sub(1))
        } else {
            let len = self.i32()?;
            Some(u32::try_from(len).unwrap_or(0))
        }
    }

    fn skip_tagged_fields(&mut self) -> Option<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?; // tag
            let size = self.uvarint()?;
            self.skip(usize::try_from(size).ok()?)?;
        }
        Some(())
    }
}
