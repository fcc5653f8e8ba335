//! The fake API server on a real TCP port, for the operator binary: the same store
//! as [`super::fake_api`], watches held open without events.
#![allow(clippy::unwrap_used, dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

use super::fake_api::FakeApi;

async fn handle(State(api): State<FakeApi>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if query.contains("watch=true") || query.contains("watch=1") {
        api.record(format!("WATCH {path}"));
        // Changes from now on, one JSON line each; the stream stays open.
        let (collection, selector) = FakeApi::watch_target(&path, &query);
        let changes = tokio_stream::wrappers::BroadcastStream::new(api.subscribe());
        let stream = changes.filter_map(move |change| {
            let line = change.ok().and_then(|(changed, kind, object)| {
                let selected = selector
                    .iter()
                    .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v.as_str()));
                (changed == collection && selected)
                    .then(|| Bytes::from(format!("{}\n", serde_json::json!({"type": kind, "object": object}))))
            });
            futures::future::ready(line.map(Ok::<_, Infallible>))
        });
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let bytes = axum::body::to_bytes(request.into_body(), 16 << 20).await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else if content_type.contains("yaml") {
        serde_yaml_ng::from_slice(&bytes).unwrap()
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let (code, answer) = api.handle(&method, &path, &query, &content_type, body);
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(answer.to_string()))
        .unwrap()
}

/// Serves `api` on 127.0.0.1; returns the address.
pub async fn serve(api: FakeApi) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(handle).with_state(api);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A kubeconfig pointing at `address`.
pub fn kubeconfig(address: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{address}\nusers:\n- name: tester\n  user:\n    token: not-checked\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\ncurrent-context: fake\n"
    )
}
