#!/usr/bin/env python3
"""Turns each golden *.binpb (our binary encoding) into *.json with Google's protojson.

Decoding uses the upstream Hubble descriptor set, not our protos, so the JSON is
what Hubble itself would print for those bytes (`hubble observe -o json` uses
protojson with UseProtoNames, i.e. preserving_proto_field_name here).
Needs `pip install protobuf`.
"""
import json
import pathlib
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

here = pathlib.Path(__file__).resolve().parent
reference = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[3] / "shared/hubble-api/hubble-api.binpb"
files = descriptor_pb2.FileDescriptorSet.FromString(reference.read_bytes())
pool = descriptor_pool.DescriptorPool()
for file in files.file:
    pool.Add(file)
response_type = message_factory.GetMessageClass(pool.FindMessageTypeByName("observer.GetFlowsResponse"))

for binary in sorted(here.glob("*.binpb")):
    message = response_type.FromString(binary.read_bytes())
    text = json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)
    binary.with_suffix(".json").write_text(json.dumps(json.loads(text), indent=2) + "\n")
    print(f"wrote {binary.with_suffix('.json').name}")
