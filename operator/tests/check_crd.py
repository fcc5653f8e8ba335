#!/usr/bin/env python3
"""Checks the committed CRD with outside validators (not part of `cargo test`).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install kubernetes-validate check-jsonschema
    /tmp/v/bin/python operator/tests/check_crd.py

1. kubernetes-validate: the CRD is a valid apiextensions.k8s.io/v1 object (strict).
2. check-jsonschema: the documented example passes the CRD's openAPIV3Schema, and
   each known-bad resource fails. Unknown fields are made errors the way `kubectl
   apply`'s strict field validation makes them (additionalProperties: false on
   every object with declared properties). CEL rules need an API server; they are
   not checked here.
"""
import copy, json, pathlib, subprocess, sys, tempfile
import yaml

root = pathlib.Path(__file__).resolve().parents[2]
crd_path = root / "charts/sightline/crds/sightlineconfigs.sightline.dev.yaml"
example_path = root / "operator/examples/sightlineconfig.yaml"
bin_dir = pathlib.Path(sys.executable).parent


def strict(schema):
    if isinstance(schema, dict):
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)


def check(document, schema_file):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(document, f)
    return subprocess.run(
        [bin_dir / "check-jsonschema", "--schemafile", schema_file, f.name],
        capture_output=True, text=True)


subprocess.run([bin_dir / "kubernetes-validate", "-k", "1.33.0", "--strict", crd_path], check=True)
crd = yaml.safe_load(crd_path.read_text())
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
schema["properties"]["metadata"] = {"type": "object"}
schema["properties"]["apiVersion"] = {"type": "string"}
schema["properties"]["kind"] = {"type": "string"}
strict(schema)
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(schema, f)
    schema_file = f.name

example = yaml.safe_load(example_path.read_text())
result = check(example, schema_file)
assert result.returncode == 0, result.stdout + result.stderr
print("example: valid")

bad = {
    "unknown aggregation level": ("agent", {"monitorAggregation": "extreme"}),
    "negative duration": ("agent", {"monitorAggregationInterval": "-5s"}),
    "unparsable duration": ("tls", {"renewBefore": "a month"}),
    "unknown metric handler": ("agent", {"metrics": [{"name": "flows"}]}),
    "FlowFilter field that does not exist": ("agent", {"metrics": [{"name": "drop", "includeFilters": [{"sourcePods": ["x"]}]}]}),
    "unknown verdict": ("agent", {"flowLogs": [{"name": "a", "filePath": "/x", "includeFilters": [{"verdict": ["MAYBE"]}]}]}),
    "unknown TLS mode": ("tls", {"mode": "Manual"}),
    "ring capacity too large": ("agent", {"eventBufferCapacity": 2097151}),
}
failed = False
for what, (section, change) in bad.items():
    document = copy.deepcopy(example)
    document["spec"][section].update(change)
    result = check(document, schema_file)
    if result.returncode == 0:
        print(f"NOT rejected: {what}")
        failed = True
    else:
        print(f"rejected: {what}")
sys.exit(1 if failed else 0)
