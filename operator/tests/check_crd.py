#!/usr/bin/env python3
"""Checks the committed CRD the way the tools users run read it.

Run by e2e/tests/crd_schema.rs with the Python of `scripts/setup`'s tools venv
(kubernetes-validate, jsonschema, PyYAML) and its kubectl:

    /opt/sightline-tools/venv/bin/python operator/tests/check_crd.py

1. kubernetes-validate: the CRD is a valid apiextensions.k8s.io/v1 object (strict).
2. The structural-schema rules the API server enforces when the CRD is created
   (every node typed, no $ref/uniqueItems, list-map keys required or defaulted,
   enum values of the node's type, ...).
3. Every YAML file is read by kubectl itself (`kubectl label --local -o json`,
   YAML 1.1, as `kubectl apply` reads it): the documented example passes the
   CRD's openAPIV3Schema and each known-bad resource fails. Unknown fields are
   errors, as `kubectl apply`'s strict field validation makes them. CEL rules
   need an API server: operator/tests/crd.rs runs them with kube's evaluator.
"""
import copy, json, pathlib, re, subprocess, sys, tempfile
import jsonschema
import yaml

root = pathlib.Path(__file__).resolve().parents[2]
crd_path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "charts/sightline/crds/sightlineconfigs.sightline.dev.yaml"
example_path = root / "operator/examples/sightlineconfig.yaml"
bin_dir = pathlib.Path(sys.executable).parent


def as_kubectl_reads(path):
    """The JSON `kubectl apply -f path` would send (kubectl's own YAML reader)."""
    result = subprocess.run(["kubectl", "label", "--local", "-f", str(path), "check-crd=1", "-o", "json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    del document["metadata"]["labels"]["check-crd"]
    if not document["metadata"]["labels"]:
        del document["metadata"]["labels"]
    return document


def structural_problems(schema, path="openAPIV3Schema", in_junctor=False):
    problems = []
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string")
    for junctor in ("allOf", "anyOf", "oneOf", "not"):
        for i, sub in enumerate(schema.get(junctor, []) if junctor != "not" else [schema.get("not")] if "not" in schema else []):
            for forbidden in ("type", "default", "nullable", "description", "additionalProperties"):
                if forbidden in sub:
                    problems.append(f"{path}.{junctor}[{i}]: {forbidden} inside a junctor")
            problems += structural_problems(sub, f"{path}.{junctor}[{i}]", True)
    kind = schema.get("type")
    if "$ref" in schema:
        problems.append(f"{path}: $ref")
    if schema.get("uniqueItems"):
        problems.append(f"{path}: uniqueItems")
    if not in_junctor and not preserve and not kind:
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: both properties and additionalProperties")
    if kind == "array" and "items" not in schema and not in_junctor:
        problems.append(f"{path}: array without items")
    if "pattern" in schema:
        re.compile(schema["pattern"])
    python_type = {"string": str, "integer": int, "boolean": bool}.get(kind)
    for value in schema.get("enum", []):
        if python_type and (type(value) is not python_type):
            problems.append(f"{path}: enum value {value!r} is not a {kind}")
    if schema.get("x-kubernetes-list-type") == "map":
        items = schema.get("items", {})
        for key in schema.get("x-kubernetes-list-map-keys", []):
            prop = items.get("properties", {}).get(key, {})
            if key not in items.get("required", []) and "default" not in prop:
                problems.append(f"{path}: list-map key {key} neither required nor defaulted")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            problems.append(f"{path}: required {name} is no property")
    for name, child in schema.get("properties", {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]")
    return problems


def strict(schema):
    """Unknown fields are errors; `nullable: true` admits null, as the API server reads it."""
    if isinstance(schema, dict):
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        if schema.get("nullable") and isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = schema["enum"] + [None]
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)


subprocess.run([bin_dir / "kubernetes-validate", "-k", "1.33.0", "--strict", str(crd_path)], check=True)
crd = as_kubectl_reads(crd_path)
assert crd == yaml.safe_load(crd_path.read_text()), "kubectl reads the CRD differently from a YAML 1.1 reader"
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
problems = structural_problems(schema)
assert not problems, "not a structural schema:\n" + "\n".join(problems)
print("crd: structural")
schema = copy.deepcopy(schema)
schema["properties"]["metadata"] = {"type": "object"}
schema["properties"]["apiVersion"] = {"type": "string"}
schema["properties"]["kind"] = {"type": "string"}
strict(schema)
validator = jsonschema.Draft7Validator(schema)


def errors(document_yaml):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(document_yaml)
    return [error.message for error in validator.iter_errors(as_kubectl_reads(f.name))]


example_yaml = example_path.read_text()
found = errors(example_yaml)
assert not found, f"the documented example is refused: {found}"
print("example: valid")
example = yaml.safe_load(example_yaml)


def changed(section, text):
    """The example with `text` (YAML as a user types it, read by kubectl) in spec.<section>."""
    document = copy.deepcopy(example)
    for key in yaml.safe_load(text):
        document["spec"][section].pop(key, None)
    dumped = yaml.safe_dump(document, sort_keys=False)
    head = f"\n  {section}:\n"
    assert head in dumped, dumped
    lines = "".join(f"    {line}\n" for line in text.splitlines())
    return dumped.replace(head, head + lines, 1)


good = {
    "quoted \"off\" drop events": ("agent", 'dropEvents: "off"\n'),
}
bad = {
    "plain off (false to kubectl)": ("agent", "dropEvents: off\n"),
    "unknown aggregation level": ("agent", "monitorAggregation: extreme\n"),
    "negative duration": ("agent", "monitorAggregationInterval: -5s\n"),
    "unparsable duration": ("tls", "renewBefore: a month\n"),
    "unknown metric handler": ("agent", "metrics: [{name: flows}]\n"),
    "FlowFilter field that does not exist": ("agent", "metrics: [{name: drop, includeFilters: [{sourcePods: [x]}]}]\n"),
    "unknown verdict": ("agent", "flowLogs: [{name: a, filePath: /x, includeFilters: [{verdict: [MAYBE]}]}]\n"),
    "unknown TLS mode": ("tls", "mode: Manual\n"),
    "ring capacity too large": ("agent", "eventBufferCapacity: 2097151\n"),
}
failed = False
for what, (section, text) in good.items():
    found = errors(changed(section, text))
    print(f"{'accepted' if not found else 'NOT accepted'}: {what} {found}")
    failed |= bool(found)
for what, (section, text) in bad.items():
    found = errors(changed(section, text))
    print(f"{'rejected' if found else 'NOT rejected'}: {what} ({found[:1]})")
    failed |= not found
sys.exit(1 if failed else 0)
