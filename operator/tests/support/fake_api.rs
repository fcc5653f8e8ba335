//! A small in-memory Kubernetes API server behind kube's tower-test mock: objects
//! by path, resource versions with optimistic concurrency (409 on a stale
//! replace), create/get/list/replace/merge-patch/apply/delete, and injected
//! failures. Enough for the reconcile and the Lease election to run unchanged.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Default)]
struct Store {
    objects: BTreeMap<String, Value>,
    version: u64,
    /// (method, path) pairs that answer 409 once.
    conflicts: Vec<(String, String)>,
    log: Vec<String>,
}

/// A change as a watch reports it: collection, `ADDED`/`MODIFIED`/`DELETED`, object.
pub type Change = (String, &'static str, Value);

#[derive(Clone)]
pub struct FakeApi {
    store: Arc<Mutex<Store>>,
    changes: tokio::sync::broadcast::Sender<Change>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self {
            store: Arc::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

fn collection_of(key: &str) -> String {
    key.rsplit_once('/')
        .map(|(collection, _)| collection.to_owned())
        .unwrap_or_default()
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let object = target.as_object_mut().unwrap();
            for (key, value) in fields {
                if value.is_null() {
                    object.remove(key);
                } else {
                    merge(object.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn decode(text: &str) -> String {
    text.replace("%2F", "/")
        .replace("%3D", "=")
        .replace("%2C", ",")
        .replace("%3A", ":")
}

/// Splits a request path into (collection key, object name, subresource).
fn split(path: &str) -> (String, Option<String>, Option<String>) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix_len = if segments.first() == Some(&"api") { 2 } else { 3 };
    let prefix = segments[..prefix_len].join("/");
    let rest = &segments[prefix_len..];
    let (collection, remaining) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (format!("{prefix}/namespaces/{}/{}", rest[1], rest[2]), &rest[3..])
    } else {
        (format!("{prefix}/{}", rest[0]), &rest[1..])
    };
    (
        collection,
        remaining.first().map(|s| (*s).to_owned()),
        remaining.get(1).map(|s| (*s).to_owned()),
    )
}

fn label_selector(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("labelSelector="))
        .flat_map(|selector| {
            decode(selector)
                .split(',')
                .filter_map(|term| term.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect::<Vec<_>>()
        })
        .collect()
}

impl FakeApi {
    pub fn client(&self) -> Client {
        self.client_with_cut(Arc::default())
    }

    /// A client whose requests go unanswered (as across a network partition, until
    /// the client's read timeout) while `cut` is set.
    pub fn client_with_cut(&self, cut: Arc<std::sync::atomic::AtomicBool>) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = self.clone();
        tokio::spawn(async move {
            let mut unanswered = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                if cut.load(std::sync::atomic::Ordering::SeqCst) {
                    unanswered.push(send);
                    continue;
                }
                let method = request.method().to_string();
                let path = request.uri().path().to_owned();
                let query = request.uri().query().unwrap_or_default().to_owned();
                let content_type = request
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else if content_type.contains("yaml") {
                    serde_yaml_ng::from_slice(&bytes).unwrap()
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                let (code, answer) = api.handle(&method, &path, &query, &content_type, body);
                send.send_response(
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Body::from(answer.to_string().into_bytes()))
                        .unwrap(),
                );
            }
        });
        Client::new(service, "default")
    }

    pub fn handle(&self, method: &str, path: &str, query: &str, content_type: &str, body: Value) -> (u16, Value) {
        if path == "/version" {
            return (
                200,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}),
            );
        }
        let mut store = self.store.lock().unwrap();
        store.log.push(format!("{method} {path}"));
        if let Some(index) = store.conflicts.iter().position(|(m, p)| m == method && p == path) {
            store.conflicts.remove(index);
            return status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version",
            );
        }
        let (collection, name, subresource) = split(path);
        let key = name.as_ref().map(|name| format!("{collection}/{name}"));
        match (method, key) {
            ("GET", None) => {
                let selector = label_selector(query);
                let items: Vec<Value> = store
                    .objects
                    .iter()
                    .filter(|(k, _)| k.rsplit_once('/').is_some_and(|(c, _)| c == collection))
                    .map(|(_, v)| v.clone())
                    .filter(|object| {
                        selector
                            .iter()
                            .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v.as_str()))
                    })
                    .collect();
                (
                    200,
                    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": store.version.to_string()}, "items": items}),
                )
            }
            ("GET", Some(key)) => match store.objects.get(&key) {
                Some(object) => (200, object.clone()),
                None => status(404, "NotFound", &format!("{key} not found")),
            },
            ("POST", None) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let name = if name.is_empty() {
                    format!("generated-{}", store.version + 1)
                } else {
                    name
                };
                let key = format!("{collection}/{name}");
                if store.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{key} already exists"));
                }
                let mut object = body;
                object["metadata"]["name"] = name.into();
                let stored = store.put(key, object);
                let _ = self.changes.send((collection.clone(), "ADDED", stored.clone()));
                (201, stored)
            }
            ("PUT", Some(key)) => {
                let Some(current) = store.objects.get(&key) else {
                    return status(404, "NotFound", &format!("{key} not found"));
                };
                if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                    return status(409, "Conflict", "the object has been modified");
                }
                let stored = store.put(key, body);
                let _ = self.changes.send((collection.clone(), "MODIFIED", stored.clone()));
                (200, stored)
            }
            ("PATCH", Some(key)) => {
                let existing = store.objects.get(&key).cloned();
                let mut object = match (existing, content_type.contains("apply-patch")) {
                    (Some(object), _) => object,
                    (None, true) => json!({}),
                    (None, false) => return status(404, "NotFound", &format!("{key} not found")),
                };
                if subresource.as_deref() == Some("status") {
                    merge(&mut object["status"], &body["status"]);
                } else {
                    merge(&mut object, &body);
                }
                let stored = store.put(key, object);
                let _ = self.changes.send((collection.clone(), "MODIFIED", stored.clone()));
                (200, stored)
            }
            ("DELETE", Some(key)) => match store.objects.remove(&key) {
                Some(object) => {
                    let _ = self.changes.send((collection.clone(), "DELETED", object.clone()));
                    (200, object)
                }
                None => status(404, "NotFound", &format!("{key} not found")),
            },
            _ => status(405, "MethodNotAllowed", path),
        }
    }

    /// Stores an object as if a user created it.
    pub fn insert(&self, path: &str, object: Value) {
        let stored = self.store.lock().unwrap().put(path.to_owned(), object);
        let _ = self.changes.send((collection_of(path), "MODIFIED", stored));
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.store.lock().unwrap().objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) -> Option<Value> {
        let removed = self.store.lock().unwrap().objects.remove(path);
        if let Some(object) = &removed {
            let _ = self.changes.send((collection_of(path), "DELETED", object.clone()));
        }
        removed
    }

    /// Changes from now on, for watches.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The collection key and label selector of a request path and query.
    pub fn watch_target(path: &str, query: &str) -> (String, Vec<(String, String)>) {
        (split(path).0, label_selector(query))
    }

    /// Every stored object whose path starts with `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<Value> {
        let store = self.store.lock().unwrap();
        store
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The next `method` on `path` (as the client sends it, `/api/v1/...`) answers 409.
    pub fn conflict_once(&self, method: &str, path: &str) {
        self.store
            .lock()
            .unwrap()
            .conflicts
            .push((method.to_owned(), path.to_owned()));
    }

    /// Logs a request the store does not answer itself (a watch).
    pub fn record(&self, line: String) {
        self.store.lock().unwrap().log.push(line);
    }

    pub fn requests(&self) -> Vec<String> {
        self.store.lock().unwrap().log.clone()
    }
}

impl Store {
    fn put(&mut self, key: String, mut object: Value) -> Value {
        self.version += 1;
        object["metadata"]["resourceVersion"] = self.version.to_string().into();
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = format!("uid-{}", self.version).into();
        }
        self.objects.insert(key, object.clone());
        object
    }
}
