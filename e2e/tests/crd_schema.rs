//! The committed SightlineConfig CRD as the tools users run read it: kubectl's YAML
//! 1.1 reader, kubernetes-validate, the API server's structural-schema rules, and
//! the documented example and known-bad resources against its schema
//! (`operator/tests/check_crd.py`, with the Python of `scripts/setup`'s tools venv).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python next to `kubernetes-validate` (its venv has jsonschema and PyYAML).
fn tools_python() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let installed = std::env::split_paths(&path)
        .map(|dir| dir.join("kubernetes-validate"))
        .find(|candidate| candidate.is_file())
        .expect("kubernetes-validate is not on PATH: run `bash scripts/setup`");
    let real = std::fs::canonicalize(&installed).expect("kubernetes-validate resolves");
    real.parent().expect("a bin directory").join("python")
}

#[test]
fn the_crd_is_structural_and_its_schema_refuses_what_the_docs_say_kubectl_apply_refuses() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../operator/tests/check_crd.py");
    let output = Command::new(tools_python())
        .arg(&script)
        .output()
        .expect("the tools venv's Python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}:\n{stdout}{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "crd: structural",
        "example: valid",
        "accepted: quoted \"off\" drop events",
        "rejected: plain off (false to kubectl)",
        "rejected: FlowFilter field that does not exist",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}
