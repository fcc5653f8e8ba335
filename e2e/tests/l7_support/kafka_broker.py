"""A tiny Kafka-speaking test server for the L7 tests: one broker (node 0) leading
partition 0 of every topic asked about. It answers ApiVersions, Metadata, Produce and
Fetch (no errors, no stored records) with kafka-python's own wire schemas, so a real
client completes its calls. Usage: kafka_broker.py HOST PORT"""

import socket
import struct
import sys
import threading
import time

from kafka.protocol.api_versions import ApiVersionsResponse
from kafka.protocol.fetch import FetchRequest, FetchResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.produce import ProduceRequest, ProduceResponse
from kafka.protocol.types import Array, Schema

HOST, PORT = sys.argv[1], int(sys.argv[2])
SUPPORTED = {0: (0, 7), 1: (0, 10), 3: (0, 7), 18: (0, 2)}


def value(kind, given):
    """A value for one schema field: `given` where the caller has one, else a zero."""
    if isinstance(kind, Array):
        inner = kind.array_of
        return [value(inner, item) for item in (given or [])]
    if isinstance(kind, Schema):
        given = given or {}
        return tuple(value(field, given.get(name)) for name, field in zip(kind.names, kind.fields))
    if given is not None:
        return given
    # Fixed-width types appear as classes in the schemas, the others as instances.
    name = kind.__name__ if isinstance(kind, type) else type(kind).__name__
    if name.startswith("Int") or name in ("UnsignedVarInt32", "VarInt32", "VarInt64"):
        return 0
    if name == "Boolean":
        return False
    if name == "Bytes":
        return b""
    return ""


def encode(response_class, fields):
    schema = response_class.SCHEMA
    return schema.encode(value(schema, fields))


def topics_of(request, name):
    """Topic names: Metadata lists bare names, Produce and Fetch (name, partitions) pairs."""
    return [entry if isinstance(entry, str) else entry[0] for entry in getattr(request, name) or []]


def answer(api_key, version, body):
    if api_key == 18:
        keys = [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in SUPPORTED.items()]
        if version > 2:
            # Unsupported version: a v0 answer with UNSUPPORTED_VERSION, as brokers do.
            return encode(ApiVersionsResponse[0], {"error_code": 35, "api_versions": keys})
        return encode(ApiVersionsResponse[version], {"api_versions": keys})
    if api_key == 3:
        request = MetadataRequest[version].decode(body)
        topics = topics_of(request, "topics") or ["orders"]
        partition = {"partition": 0, "leader": 0, "replicas": [0], "isr": [0]}
        return encode(MetadataResponse[version], {
            "brokers": [{"node_id": 0, "host": HOST, "port": PORT, "rack": None}],
            "cluster_id": "sightline-test",
            "topics": [{"topic": t, "partitions": [partition]} for t in topics],
        })
    if api_key == 0:
        request = ProduceRequest[version].decode(body)
        return encode(ProduceResponse[version], {
            "topics": [{"topic": t, "partitions": [{"partition": 0, "offset": 0, "timestamp": -1,
                                                    "log_start_offset": 0}]}
                       for t in topics_of(request, "topics")],
        })
    if api_key == 1:
        request = FetchRequest[version].decode(body)
        # Nothing is stored: wait as a broker does for data before answering empty.
        time.sleep(request.max_wait_time / 1000)
        return encode(FetchResponse[version], {
            "topics": [{"topics": t, "partitions": [{"partition": 0, "highwater_offset": 0,
                                                     "last_stable_offset": 0, "log_start_offset": 0,
                                                     "records": b""}]}
                       for t in topics_of(request, "topics")],
        })
    return None


def serve(connection):
    with connection:
        buffer = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 4:
                size = struct.unpack(">i", buffer[:4])[0]
                if len(buffer) < 4 + size:
                    break
                frame, buffer = buffer[4:4 + size], buffer[4 + size:]
                api_key, version, correlation_id = struct.unpack(">hhi", frame[:8])
                client_id_len = struct.unpack(">h", frame[8:10])[0]
                body = frame[10 + max(client_id_len, 0):]
                reply = answer(api_key, version, body)
                if reply is None:
                    return
                payload = struct.pack(">i", correlation_id) + reply
                connection.sendall(struct.pack(">i", len(payload)) + payload)


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((HOST, PORT))
listener.listen()
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
