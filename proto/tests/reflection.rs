//! A reflection client (as grpcurl or `hubble` tooling would use) sees both Hubble
//! services and can fetch Cilium's file names from the server, over v1 and v1alpha.

use prost::Message;
use prost_types::FileDescriptorProto;
use sightline_proto::reflection::{self, OBSERVER_SERVICE, PEER_SERVICE};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic_reflection::pb::{v1, v1alpha};

async fn serve_reflection() -> Channel {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let services = [OBSERVER_SERVICE, PEER_SERVICE];
    let router = Server::builder()
        .add_service(reflection::v1(&services).expect("v1 reflection"))
        .add_service(reflection::v1alpha(&services).expect("v1alpha reflection"));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

fn file_names(encoded: &[Vec<u8>]) -> Vec<String> {
    encoded
        .iter()
        .map(|bytes| {
            FileDescriptorProto::decode(bytes.as_slice())
                .expect("descriptor")
                .name()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn v1_lists_services_and_resolves_files_by_name_and_symbol() {
    use v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(serve_reflection().await);
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileByFilename("flow/flow.proto".into())),
        ask(MessageRequest::FileContainingSymbol("peer.Peer".into())),
        ask(MessageRequest::FileContainingSymbol("observer.GetFlowsResponse".into())),
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection stream")
        .into_inner();

    let mut answers = Vec::new();
    while let Some(response) = responses.message().await.expect("response") {
        answers.push(response.message_response.expect("a response"));
    }
    let [services, flow_file, peer_file, observer_file] = answers.try_into().expect("four answers");

    let MessageResponse::ListServicesResponse(services) = services else {
        panic!("{services:?}")
    };
    let mut names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["observer.Observer", "peer.Peer"]);

    let MessageResponse::FileDescriptorResponse(flow_file) = flow_file else {
        panic!("{flow_file:?}")
    };
    let flow = FileDescriptorProto::decode(flow_file.file_descriptor_proto[0].as_slice()).expect("flow descriptor");
    assert_eq!(flow.name(), "flow/flow.proto");
    assert!(flow.message_type.iter().any(|m| m.name() == "Flow"));

    let MessageResponse::FileDescriptorResponse(peer_file) = peer_file else {
        panic!("{peer_file:?}")
    };
    assert_eq!(file_names(&peer_file.file_descriptor_proto), ["peer/peer.proto"]);

    let MessageResponse::FileDescriptorResponse(observer_file) = observer_file else {
        panic!("{observer_file:?}")
    };
    let observer = FileDescriptorProto::decode(observer_file.file_descriptor_proto[0].as_slice()).expect("observer");
    assert_eq!(observer.name(), "observer/observer.proto");

    // A client decoding GetFlowsResponse then fetches every import by file name.
    let imports: Vec<_> = observer
        .dependency
        .iter()
        .map(|d| ask(MessageRequest::FileByFilename(d.clone())))
        .collect();
    assert!(observer.dependency.contains(&"flow/flow.proto".to_owned()));
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(imports))
        .await
        .expect("reflection stream")
        .into_inner();
    let mut resolved = Vec::new();
    while let Some(response) = responses.message().await.expect("response") {
        let Some(MessageResponse::FileDescriptorResponse(file)) = response.message_response else {
            panic!("import not resolved: {response:?}")
        };
        resolved.extend(file_names(&file.file_descriptor_proto).into_iter().take(1));
    }
    assert_eq!(resolved, observer.dependency);
}

#[tokio::test]
async fn v1alpha_lists_services_and_resolves_flow_proto() {
    use v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(serve_reflection().await);
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileByFilename("flow/flow.proto".into())),
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection stream")
        .into_inner();

    let Some(first) = responses.message().await.expect("response") else {
        panic!("no answer")
    };
    let Some(MessageResponse::ListServicesResponse(services)) = first.message_response else {
        panic!("not a list")
    };
    let mut names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["observer.Observer", "peer.Peer"]);

    let Some(second) = responses.message().await.expect("response") else {
        panic!("no answer")
    };
    let Some(MessageResponse::FileDescriptorResponse(file)) = second.message_response else {
        panic!("not a file")
    };
    assert_eq!(file_names(&file.file_descriptor_proto)[0], "flow/flow.proto");
}
