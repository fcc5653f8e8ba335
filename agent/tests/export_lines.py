#!/usr/bin/env python3
"""Independent check of exported flow logs: every line must parse as an
observer.ExportEvent with the protobuf JSON parser built from Hubble's published
descriptor set, unknown fields rejected. Prints a JSON summary.

usage: export_lines.py DESCRIPTOR_SET FILE...   (.gz files are decompressed)
"""
import gzip
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def export_event_class(path):
    files = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    pending = list(files.file)
    while pending:
        progressed = False
        for file in list(pending):
            try:
                pool.Add(file)
            except TypeError:
                continue
            pending.remove(file)
            progressed = True
        if not progressed:
            raise SystemExit("unresolvable descriptors")
    descriptor = pool.FindMessageTypeByName("observer.ExportEvent")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def main():
    cls = export_event_class(sys.argv[1])
    uuids, verdicts, flow_keys, kinds, lines = [], {}, set(), {}, 0
    aggregated_lines, aggregated_flows = 0, 0
    for name in sys.argv[2:]:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(name, "rt", encoding="utf-8") as f:
            for line in f:
                lines += 1
                event = json_format.Parse(line, cls(), ignore_unknown_fields=False)
                kind = event.WhichOneof("response_types")
                kinds[kind] = kinds.get(kind, 0) + 1
                raw = json.loads(line)
                if kind == "flow":
                    flow_keys.update(raw["flow"].keys())
                    uuids.append(event.flow.uuid)
                    verdict = raw["flow"].get("verdict", "VERDICT_UNKNOWN")
                    verdicts[verdict] = verdicts.get(verdict, 0) + 1
                    if event.flow.HasField("aggregate"):
                        counts = event.flow.aggregate
                        aggregated_lines += 1
                        aggregated_flows += (counts.ingress_flow_count + counts.egress_flow_count
                                             + counts.unknown_direction_flow_count)
    print(json.dumps({
        "lines": lines,
        "kinds": kinds,
        "verdicts": verdicts,
        "flow_keys": sorted(flow_keys),
        "uuids": uuids,
        "aggregated_lines": aggregated_lines,
        "aggregated_flows": aggregated_flows,
    }))


if __name__ == "__main__":
    main()
