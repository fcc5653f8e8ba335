//! GetFlows without copying flows: an unmasked flow's response bytes are encoded
//! once per ring entry (see [`Entry::flow_response`]) and copied to every client,
//! instead of deep-cloning each Flow into a `GetFlowsResponse` per client. The
//! bytes on the wire are a regular `GetFlowsResponse`.

use std::sync::Arc;

use prost::Message;
use prost::bytes::BufMut;
use sightline_proto::codec::{CodecPair, stream_buffers};
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse};
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

use super::entry::{EncodeArena, Entry};
use crate::event::Event;

/// One GetFlows response, either borrowed from the ring or built for this client.
#[derive(Debug, Clone)]
pub enum FlowsItem {
    /// A flow sent whole: response `flow` = the flow, `time`/`node_name` from it.
    Shared(Arc<Entry>),
    /// A response built for this request alone: a field-masked flow, a lost-events
    /// notice from the pipeline, or this reader's own ring losses.
    Owned(Box<GetFlowsResponse>),
}

impl FlowsItem {
    /// The equivalent message (clones a shared flow).
    pub fn into_response(self) -> GetFlowsResponse {
        match self {
            FlowsItem::Owned(response) => *response,
            FlowsItem::Shared(event) => match event.event() {
                Event::Flow(flow) => GetFlowsResponse {
                    node_name: flow.node_name().to_owned(),
                    time: flow.time,
                    response_types: Some(sightline_proto::observer::get_flows_response::ResponseTypes::Flow(
                        flow.to_flow(),
                    )),
                },
                _ => GetFlowsResponse::default(),
            },
        }
    }
}

/// The GetFlows codec pair: responses through [`FlowsEncoder`], requests decoded by prost.
pub(crate) type FlowsCodec = CodecPair<FlowsEncoder, ProstDecoder<GetFlowsRequest>>;

/// One per stream: first reads of flows encode into the stream's own arena.
#[derive(Debug, Default)]
pub struct FlowsEncoder {
    arena: EncodeArena,
}

impl Encoder for FlowsEncoder {
    type Item = FlowsItem;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        stream_buffers()
    }

    fn encode(&mut self, item: FlowsItem, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let too_small = |e: prost::EncodeError| Status::internal(format!("encoding GetFlowsResponse: {e}"));
        match item {
            FlowsItem::Owned(response) => response.encode(buf).map_err(too_small),
            FlowsItem::Shared(entry) => {
                if let Some(bytes) = entry.flow_response(&mut self.arena) {
                    buf.put_slice(bytes);
                }
                Ok(())
            }
        }
    }
}

/// Decodes nothing but the message size: lets benchmarks and tests count responses
/// without paying for decoding on the client.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingDecoder;

impl Decoder for CountingDecoder {
    type Item = usize;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        stream_buffers()
    }

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<usize>, Status> {
        use prost::bytes::Buf;
        let len = buf.remaining();
        buf.advance(len);
        Ok(Some(len))
    }
}

/// Client side of GetFlows that counts responses without decoding them.
pub type CountingCodec = CodecPair<tonic_prost::ProstEncoder<GetFlowsRequest>, CountingDecoder>;
