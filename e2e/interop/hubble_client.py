#!/usr/bin/python3
"""A Hubble API client built only from the published descriptor set.

It shares no code with Sightline: gRPC's C core speaks HTTP/2 and TLS, Python
protobuf decodes with the official Hubble v1.19.4 descriptors. The Rust test
`e2e/tests/interop.rs` drives it and checks what it prints (one JSON object per
call, messages in protobuf's canonical JSON form).

usage: hubble_client.py DESCRIPTORS TARGET [--ca F --cert F --key F --server-name N] CALL...
CALL: status | nodes | namespaces | peers:N | flows:N | follow:N | bad-filter
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def message_classes(path):
    files = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    pending = list(files.file)
    # protoc writes dependencies first, but do not rely on it.
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
            raise SystemExit("unresolvable descriptors: %s" % [f.name for f in pending])

    def cls(name):
        descriptor = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(descriptor)
        return message_factory.MessageFactory(pool).GetPrototype(descriptor)

    return cls


def as_json(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=False)


def main(argv):
    descriptors, target, rest = argv[1], argv[2], argv[3:]
    tls = {}
    calls = []
    while rest:
        head = rest.pop(0)
        if head.startswith("--"):
            tls[head[2:]] = rest.pop(0)
        else:
            calls.append(head)
    cls = message_classes(descriptors)
    if tls:
        read = lambda k: open(tls[k], "rb").read() if k in tls else None
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read("ca"), private_key=read("key"), certificate_chain=read("cert")
        )
        options = [("grpc.ssl_target_name_override", tls["server-name"])] if "server-name" in tls else []
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target)

    def unary(method, request, response):
        call = channel.unary_unary(
            method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=cls(response).FromString
        )
        return call(request, timeout=10)

    def stream(method, request, response, limit):
        call = channel.unary_stream(
            method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=cls(response).FromString
        )
        responses = call(request, timeout=20)
        out = []
        for message in responses:
            out.append(as_json(message))
            if len(out) >= limit:
                responses.cancel()
                break
        return out

    for call in calls:
        name, _, arg = call.partition(":")
        try:
            if name == "status":
                result = as_json(unary("/observer.Observer/ServerStatus", cls("observer.ServerStatusRequest")(), "observer.ServerStatusResponse"))
            elif name == "nodes":
                result = as_json(unary("/observer.Observer/GetNodes", cls("observer.GetNodesRequest")(), "observer.GetNodesResponse"))
            elif name == "namespaces":
                result = as_json(unary("/observer.Observer/GetNamespaces", cls("observer.GetNamespacesRequest")(), "observer.GetNamespacesResponse"))
            elif name == "peers":
                result = stream("/peer.Peer/Notify", cls("peer.NotifyRequest")(), "peer.ChangeNotification", int(arg))
            elif name in ("flows", "follow"):
                request = cls("observer.GetFlowsRequest")(number=int(arg), follow=(name == "follow"))
                result = stream("/observer.Observer/GetFlows", request, "observer.GetFlowsResponse", 10**9 if name == "flows" else int(arg))
            elif name == "bad-filter":
                request = cls("observer.GetFlowsRequest")(number=1)
                request.whitelist.add().source_port.append("not-a-port")
                result = stream("/observer.Observer/GetFlows", request, "observer.GetFlowsResponse", 1)
            else:
                raise SystemExit("unknown call " + call)
            print(json.dumps({"call": call, "ok": result}))
        except grpc.RpcError as error:
            print(json.dumps({"call": call, "error": error.code().name, "details": error.details()}))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
