#![allow(clippy::unwrap_used)]
use std::convert::Infallible;

use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;
use prost::Message;
use prost::bytes::{BufMut, Bytes, BytesMut};
use sightline_proto::Timestamp;
use sightline_proto::flow::Flow;
use sightline_proto::observer::GetFlowsResponse;
use sightline_proto::observer::get_flows_response::ResponseTypes;
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, HeaderValue};

use super::FlowStream;
use crate::raw::RelayFlow;

fn response(seconds: i64, uuid: &str) -> GetFlowsResponse {
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(Flow {
            uuid: uuid.into(),
            ..Flow::default()
        })),
        node_name: "node-a".into(),
        time: Some(Timestamp { seconds, nanos: 0 }),
    }
}

/// A message with gRPC's prefix, as it travels in DATA frames.
fn framed(message: &GetFlowsResponse) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(0);
    out.put_u32(message.encoded_len() as u32);
    message.encode(&mut out).unwrap();
    out.to_vec()
}

fn trailers(status: &str, message: Option<&str>) -> Frame<Bytes> {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from_str(status).unwrap());
    if let Some(message) = message {
        map.insert("grpc-message", HeaderValue::from_str(message).unwrap());
    }
    Frame::trailers(map)
}

fn stream(frames: Vec<Frame<Bytes>>, max_message_size: usize) -> FlowStream {
    let body = StreamBody::new(futures::stream::iter(frames.into_iter().map(Ok::<_, Infallible>)));
    FlowStream::new(Body::new(body), max_message_size)
}

fn data(bytes: &[u8]) -> Frame<Bytes> {
    Frame::data(Bytes::copy_from_slice(bytes))
}

async fn collect(stream: FlowStream) -> Vec<Result<RelayFlow, tonic::Status>> {
    stream.collect().await
}

#[tokio::test]
async fn messages_packed_in_one_frame_or_split_across_frames_arrive_whole_and_in_order() {
    let messages: Vec<GetFlowsResponse> = (0..5).map(|k| response(k, &format!("flow-{k}"))).collect();
    let mut packed = framed(&messages[0]);
    packed.extend(framed(&messages[1]));
    // The third message is cut inside its 5-byte prefix and again inside its body.
    let third = framed(&messages[2]);
    packed.extend(&third[..2]);
    let fourth = framed(&messages[3]);
    let fifth = framed(&messages[4]);
    let mut tail = third[12..].to_vec();
    tail.extend(&fourth);
    tail.extend(&fifth[..fifth.len() - 1]);
    let frames = vec![
        data(&packed),
        data(&third[2..12]),
        data(&tail),
        data(&fifth[fifth.len() - 1..]),
        trailers("0", None),
    ];
    let received = collect(stream(frames, 1024)).await;
    let decoded: Vec<GetFlowsResponse> = received
        .into_iter()
        .map(|item| item.unwrap().into_response().unwrap())
        .collect();
    assert_eq!(decoded, messages);
}

#[tokio::test]
async fn a_failed_call_ends_with_the_agents_status() {
    let frames = vec![
        data(&framed(&response(1, "a"))),
        trailers("14", Some("agent shutting down")),
    ];
    let received = collect(stream(frames, 1024)).await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].as_ref().unwrap().time_nanos(), 1_000_000_000);
    let status = received[1].as_ref().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "agent shutting down");
}

#[tokio::test]
async fn compressed_or_oversized_messages_are_refused_by_name() {
    let mut compressed = framed(&response(1, "a"));
    compressed[0] = 1;
    let received = collect(stream(vec![data(&compressed), trailers("0", None)], 1024)).await;
    let status = received.last().unwrap().as_ref().unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(status.message().contains("compressed"), "{}", status.message());
    assert_eq!(received.len(), 1, "nothing is read after a broken prefix");

    let big = framed(&response(1, &"x".repeat(2000)));
    let received = collect(stream(vec![data(&big), trailers("0", None)], 1024)).await;
    let status = received.last().unwrap().as_ref().unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains(&format!("{} bytes", big.len() - 5)),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_stream_cut_off_mid_message_or_without_a_status_is_an_error() {
    let message = framed(&response(1, "a"));
    let received = collect(stream(vec![data(&message[..10]), trailers("0", None)], 1024)).await;
    assert_eq!(received.len(), 1);
    assert!(received[0].as_ref().unwrap_err().message().contains("inside a message"));

    let received = collect(stream(vec![data(&message)], 1024)).await;
    assert_eq!(received.len(), 2);
    assert!(received[0].is_ok());
    assert!(received[1].as_ref().unwrap_err().message().contains("without a status"));
}
