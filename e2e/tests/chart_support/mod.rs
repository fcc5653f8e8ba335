//! Runs Helm on `charts/sightline` and gives the rendered manifests as JSON values, with
//! small queries over them (objects by kind and name, containers, pod specs).
//! Helm v4 and kubernetes-validate come from `scripts/setup`.
#![allow(dead_code)] // each test file that includes it uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

pub const NAMESPACE: &str = "sightline";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e has a parent directory")
        .to_path_buf()
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/sightline")
}

/// Every values file under `ci/`, sorted, with the name it is reported under.
pub fn ci_values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/sightline/ci exists")
        .map(|entry| entry.expect("readable ci entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "expected the CI values files, found {files:?}");
    files
}

pub fn ci_values(name: &str) -> PathBuf {
    let path = chart_dir().join("ci").join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs a tool installed by `scripts/setup`; a missing tool fails the test with that hint.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}); run `bash scripts/setup`"))
}

pub fn helm(args: &[&str]) -> Output {
    run("helm", args)
}

/// `helm template` with extra arguments (`-f FILE`, `--set k=v`, `--api-versions ...`).
pub fn template(extra: &[&str]) -> Output {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 chart path");
    let mut args = vec!["template", "sightline", chart, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    helm(&args)
}

/// The rendered manifests; panics with Helm's stderr when rendering fails.
pub fn render(extra: &[&str]) -> Manifests {
    let output = template(extra);
    assert!(
        output.status.success(),
        "helm template {extra:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Manifests::parse(&String::from_utf8_lossy(&output.stdout))
}

pub fn render_file(values: &Path) -> Manifests {
    render(&["-f", values.to_str().expect("UTF-8 path")])
}

/// Renders that must fail; returns Helm's error text.
pub fn render_error(extra: &[&str]) -> String {
    let output = template(extra);
    assert!(
        !output.status.success(),
        "helm template {extra:?} rendered, but it must fail"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub struct Manifests {
    pub text: String,
    pub objects: Vec<Value>,
}

impl Manifests {
    fn parse(text: &str) -> Self {
        let objects = serde_yaml_ng::Deserializer::from_str(text)
            .map(|document| Value::deserialize(document).expect("helm output is YAML"))
            .filter(|value| !value.is_null())
            .collect();
        Self {
            text: text.to_owned(),
            objects,
        }
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
    }

    /// Pod templates of every workload, with the workload's name.
    pub fn pod_specs(&self) -> Vec<(String, &Value)> {
        self.objects
            .iter()
            .filter(|o| {
                matches!(
                    o["kind"].as_str(),
                    Some("DaemonSet" | "Deployment" | "StatefulSet" | "Job" | "CronJob")
                )
            })
            .map(|o| (name(o), &o["spec"]["template"]["spec"]))
            .collect()
    }
}

pub fn name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

pub fn containers(pod_spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| pod_spec[*key].as_array())
        .flatten()
        .collect()
}

pub fn container<'a>(workload: &'a Value, container_name: &str) -> &'a Value {
    containers(&workload["spec"]["template"]["spec"])
        .into_iter()
        .find(|c| c["name"] == container_name)
        .unwrap_or_else(|| panic!("{} has no container {container_name}", name(workload)))
}

pub fn args(container: &Value) -> Vec<String> {
    strings(&container["args"])
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The value of `--flag=value` in an argument list.
pub fn flag(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("--{flag}=");
    args.iter().find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
}

/// Every key path in `value` whose key is `key` (for "no privileged anywhere" checks).
pub fn find_key<'a>(value: &'a Value, key: &str, path: String, found: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if k == key {
                    found.push((here.clone(), v));
                }
                find_key(v, key, here, found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_key(v, key, format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}
