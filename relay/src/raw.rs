//! GetFlows responses passed through without decoding the flows.
//!
//! Merging needs three facts per response: its `time`, whether it is a flow (it
//! counts towards `number`) and the bytes to forward. Decoding a whole `flow.Flow`
//! to learn them and encoding it again for the client costs microseconds per flow;
//! reading the response's top-level fields and keeping the agent's bytes costs a
//! few varint reads. Filters and field masks were already applied by the agents.
//! Node status events the relay makes itself are ordinary messages.

use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{WireType, decode_varint, skip_field};
use sightline_proto::Timestamp;
use sightline_proto::codec::{CodecPair, stream_buffers};
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse};
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

use sightline_proto::fields::get_flows_response as field;

#[derive(Debug, thiserror::Error)]
/// Why an agent's `GetFlowsResponse` could not be read; the stream ends with Internal.
pub enum ParseError {
    #[error(transparent)]
    /// A field's value is malformed.
    Decode(#[from] prost::DecodeError),
    #[error("a length-delimited field runs past the end of the message")]
    /// A length-delimited field runs past the end.
    Truncated,
    #[error("invalid field key {0}")]
    /// A field key with an invalid wire type or number 0.
    Key(u64),
}

#[derive(Debug, Clone, PartialEq)]
/// A response on its way through the relay: an agent's bytes untouched, or the relay's own.
pub enum RelayFlow {
    /// A response from an agent, forwarded byte for byte.
    Raw {
        /// The response's time, nanoseconds since the Unix epoch.
        time: i128,
        /// It carries a flow (not lost events or node status).
        is_flow: bool,
        /// The encoded `GetFlowsResponse`.
        bytes: Bytes,
    },
    /// A response the relay made (node status).
    Own(Box<GetFlowsResponse>),
}

impl RelayFlow {
    /// The response's time, nanoseconds since the Unix epoch (0 when it has none).
    pub fn time_nanos(&self) -> i128 {
        match self {
            RelayFlow::Raw { time, .. } => *time,
            RelayFlow::Own(response) => response.time.as_ref().map_or(0, Timestamp::as_unix_nanos),
        }
    }

    /// Whether the response carries a flow.
    pub fn is_flow(&self) -> bool {
        match self {
            RelayFlow::Raw { is_flow, .. } => *is_flow,
            RelayFlow::Own(response) => matches!(
                response.response_types,
                Some(sightline_proto::observer::get_flows_response::ResponseTypes::Flow(_))
            ),
        }
    }

    /// Reads what merging needs from an encoded `GetFlowsResponse`.
    pub fn parse(bytes: Bytes) -> Result<Self, ParseError> {
        let mut buf: &[u8] = &bytes;
        let (mut time, mut is_flow) = (0, false);
        while !buf.is_empty() {
            let (tag, wire_type) = key(&mut buf)?;
            match (tag, wire_type) {
                (field::TIME, WireType::LengthDelimited) => {
                    let body = length_delimited(&mut buf)?;
                    time = timestamp_nanos(body)?;
                }
                (field::FLOW, WireType::LengthDelimited) => {
                    is_flow = true;
                    length_delimited(&mut buf)?;
                }
                (_, WireType::LengthDelimited) => {
                    length_delimited(&mut buf)?;
                }
                _ => skip_field(wire_type, tag, &mut buf, Default::default())?,
            }
        }
        Ok(RelayFlow::Raw { time, is_flow, bytes })
    }

    /// The decoded message (tests, and clients that want one).
    pub fn into_response(self) -> Result<GetFlowsResponse, prost::DecodeError> {
        match self {
            RelayFlow::Raw { bytes, .. } => GetFlowsResponse::decode(bytes),
            RelayFlow::Own(response) => Ok(*response),
        }
    }
}

impl From<GetFlowsResponse> for RelayFlow {
    fn from(response: GetFlowsResponse) -> Self {
        RelayFlow::Own(Box::new(response))
    }
}

/// A varint, with the one- and two-byte forms (every key and most lengths of a
/// response) read inline: prost's general decoder was a tenth of the relay's time.
#[inline(always)]
fn varint(buf: &mut &[u8]) -> Result<u64, ParseError> {
    let bytes: &[u8] = buf;
    match bytes {
        [byte, rest @ ..] if *byte < 0x80 => {
            *buf = rest;
            Ok(u64::from(*byte))
        }
        [low, high, rest @ ..] if *high < 0x80 => {
            *buf = rest;
            Ok(u64::from(low & 0x7f) | u64::from(*high) << 7)
        }
        _ => Ok(decode_varint(buf)?),
    }
}

/// A field key: tag and wire type, checked as prost checks them.
#[inline(always)]
fn key(buf: &mut &[u8]) -> Result<(u32, WireType), ParseError> {
    let key = varint(buf)?;
    let tag = u32::try_from(key >> 3).map_err(|_| ParseError::Key(key))?;
    let wire_type = WireType::try_from(key & 7).map_err(|_| ParseError::Key(key))?;
    if tag == 0 {
        return Err(ParseError::Key(key));
    }
    Ok((tag, wire_type))
}

/// Takes the next length-delimited value off `buf`.
#[inline(always)]
fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], ParseError> {
    let len = usize::try_from(varint(buf)?).unwrap_or(usize::MAX);
    if len > buf.len() {
        return Err(ParseError::Truncated);
    }
    let (value, rest) = buf.split_at(len);
    *buf = rest;
    Ok(value)
}

/// A `google.protobuf.Timestamp` as nanoseconds, read by hand: prost's generic
/// message decoding was a tenth of the relay's CPU time.
fn timestamp_nanos(mut buf: &[u8]) -> Result<i128, ParseError> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while !buf.is_empty() {
        let (tag, wire_type) = key(&mut buf)?;
        match (tag, wire_type) {
            // Protobuf's int64 and int32 are the varint's low bits, two's complement.
            (1, WireType::Varint) => seconds = varint(&mut buf)? as i64,
            (2, WireType::Varint) => nanos = varint(&mut buf)? as i32,
            _ => skip_field(wire_type, tag, &mut buf, Default::default())?,
        }
    }
    Ok(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

/// Client side: requests as usual, responses as [`RelayFlow`]s.
pub type UpstreamCodec = CodecPair<ProstEncoder<GetFlowsRequest>, RawDecoder>;

#[derive(Debug, Default, Clone, Copy)]
/// tonic decoder that reads only the time and kind of each response and keeps its bytes.
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = RelayFlow;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        stream_buffers()
    }

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<RelayFlow>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        RelayFlow::parse(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("malformed GetFlowsResponse from agent: {e}")))
    }
}

/// Server side: requests as usual, [`RelayFlow`]s written as they came.
pub type DownstreamCodec = CodecPair<RawEncoder, ProstDecoder<GetFlowsRequest>>;

#[derive(Debug, Default, Clone, Copy)]
/// tonic encoder that writes the kept bytes as they came.
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = RelayFlow;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        stream_buffers()
    }

    fn encode(&mut self, item: RelayFlow, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            RelayFlow::Raw { bytes, .. } => {
                buf.put(bytes);
                Ok(())
            }
            RelayFlow::Own(response) => response
                .encode(buf)
                .map_err(|e| Status::internal(format!("encoding GetFlowsResponse: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sightline_proto::flow::{Flow, LostEvent};
    use sightline_proto::observer::get_flows_response::ResponseTypes;

    use super::*;

    fn response(kind: ResponseTypes, seconds: i64) -> GetFlowsResponse {
        GetFlowsResponse {
            response_types: Some(kind),
            node_name: "node-a".into(),
            time: Some(Timestamp { seconds, nanos: 7 }),
        }
    }

    #[test]
    fn time_and_kind_are_read_and_the_bytes_kept() {
        let flow = response(
            ResponseTypes::Flow(Flow {
                uuid: "u".into(),
                ..Flow::default()
            }),
            42,
        );
        let bytes = Bytes::from(flow.encode_to_vec());
        let parsed = RelayFlow::parse(bytes.clone()).unwrap();
        assert_eq!(
            parsed,
            RelayFlow::Raw {
                time: 42_000_000_007,
                is_flow: true,
                bytes
            }
        );
        assert_eq!(parsed.into_response().unwrap(), flow);

        let lost = response(ResponseTypes::LostEvents(LostEvent::default()), 1);
        let parsed = RelayFlow::parse(Bytes::from(lost.encode_to_vec())).unwrap();
        assert!(!parsed.is_flow());
        assert_eq!(parsed.time_nanos(), 1_000_000_007);
    }

    #[test]
    fn times_before_the_epoch_and_unknown_timestamp_fields_read_as_prost_does() {
        let mut message = response(ResponseTypes::Flow(Flow::default()), -5);
        message.time = Some(Timestamp { seconds: -5, nanos: 3 });
        let mut bytes = message.encode_to_vec();
        let parsed = RelayFlow::parse(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(parsed.time_nanos(), -4_999_999_997);
        // A newer Timestamp with a field 3 (varint 9) appended inside `time`, the
        // response's last field: its length byte sits just before its body.
        let time_len_at = bytes.len() - Timestamp { seconds: -5, nanos: 3 }.encoded_len() - 1;
        bytes[time_len_at] += 2;
        bytes.extend_from_slice(&[3 << 3, 9]);
        let decoded = GetFlowsResponse::decode(&bytes[..]).unwrap();
        let parsed = RelayFlow::parse(Bytes::from(bytes)).unwrap();
        assert_eq!(parsed.time_nanos(), decoded.time.unwrap().as_unix_nanos());
    }

    /// Lengths and keys of one, two and three bytes, and fields the relay does not
    /// know, read as prost reads them.
    #[test]
    fn varints_of_every_width_agree_with_prost() {
        for name_len in [0usize, 1, 127, 128, 16_383, 16_384, 70_000] {
            let mut message = response(ResponseTypes::Flow(Flow::default()), 1_700_000_000);
            message.node_name = "n".repeat(name_len);
            message.time = Some(Timestamp {
                seconds: 1_700_000_000 + name_len as i64,
                nanos: 999_999_999,
            });
            let mut bytes = message.encode_to_vec();
            // An unknown varint field (tag 2000) and an unknown fixed64 (tag 3).
            bytes.extend_from_slice(&[0x80, 0x7d, 0xff, 0xff, 0x03, 3 << 3 | 1, 1, 2, 3, 4, 5, 6, 7, 8]);
            let parsed = RelayFlow::parse(Bytes::from(bytes)).unwrap();
            assert_eq!(parsed.time_nanos(), message.time.unwrap().as_unix_nanos(), "{name_len}");
            assert!(parsed.is_flow());
        }
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        // Wire types 6 and 7 do not exist; tag 0 is reserved.
        for key in [[0x0e], [0x0f], [0x02]] {
            assert!(matches!(
                RelayFlow::parse(Bytes::copy_from_slice(&key)),
                Err(ParseError::Key(_))
            ));
        }
        let mut bytes = response(ResponseTypes::Flow(Flow::default()), 3).encode_to_vec();
        bytes.truncate(bytes.len() - 2);
        assert!(RelayFlow::parse(Bytes::from(bytes)).is_err());
        assert!(RelayFlow::parse(Bytes::from_static(&[0xff, 0xff, 0xff])).is_err());
    }
}
