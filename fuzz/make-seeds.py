#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/seed-*): a few valid exchanges per target,
mirroring the parsers' unit-test fixtures, so a short run starts past the first syntax checks.

The L7 targets read segments: a control byte (bit 0: from the server), a length byte, then
the payload (see fuzz_targets/support/segments.rs). Re-run after changing the format:
`python3 fuzz/make-seeds.py`; the output is deterministic.
"""

import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"
CLIENT, SERVER = 0, 1


def conversation(*messages):
    """(direction, bytes) pairs as segments of at most 255 bytes, in order."""
    out = bytearray()
    for direction, payload in messages:
        for start in range(0, max(len(payload), 1), 255):
            piece = payload[start : start + 255]
            out += bytes([direction, len(piece)]) + piece
    return bytes(out)


def split(direction, payload, *cuts):
    """One message cut into several segments at the given offsets."""
    bounds = [0, *cuts, len(payload)]
    return [(direction, payload[a:b]) for a, b in zip(bounds, bounds[1:])]


# ---- HTTP/1.x ----

HTTP1 = {
    "keepalive-get-200": conversation(
        (CLIENT, b"GET /api/orders?id=7 HTTP/1.1\r\nHost: backend:8080\r\nUser-Agent: curl/8\r\n\r\n"),
        (SERVER, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
        (CLIENT, b"GET /missing HTTP/1.1\r\nHost: backend:8080\r\n\r\n"),
        (SERVER, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ),
    "post-chunked-500": conversation(
        (CLIENT, b"POST /api/pay HTTP/1.1\r\nHost: pay\r\nContent-Length: 5\r\n\r\nhello"),
        (SERVER, b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"4\r\nfail\r\n3;ext=1\r\ned!\r\n0\r\nTrailer: x\r\n\r\n"),
    ),
    "pipelined-split": conversation(
        *split(CLIENT, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\n\r\n", 9, 30),
        *split(SERVER, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\n", 20),
    ),
    "http10-close": conversation(
        (CLIENT, b"GET http://user:pw@example.com/x HTTP/1.0\r\n\r\n"),
        (SERVER, b"HTTP/1.0 301 Moved Permanently\r\nLocation: /y\r\n\r\nbody until close"),
    ),
}


# ---- HTTP/2 (after the client preface, which the target sends itself) ----

END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind, flags, stream_id, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def hpack_int(value, prefix_bits, pattern):
    """HPACK integer: an N-bit prefix, then 7-bit groups when it does not fit."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([pattern | value])
    out, value = bytearray([pattern | limit]), value - limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def literal(name, value, name_index=None):
    """HPACK literal with incremental indexing, no Huffman coding."""
    if name_index is not None:
        head = hpack_int(name_index, 6, 0x40)
    else:
        head = bytes([0x40, len(name)]) + name
    return head + bytes([len(value)]) + value


SETTINGS = frame(4, 0, 0, b"")
SETTINGS_ACK = frame(4, 1, 0, b"")
GRPC_BODY = b"\0\0\0\0\x02\x08\x01"
# :method POST (static 3), :scheme http (static 6), then literals that enter the dynamic table.
REQUEST_1 = bytes([0x83, 0x86]) + literal(b"", b"/shop.Orders/Get", 4) + literal(
    b"", b"orders.shop.svc:50051", 1) + literal(b"", b"application/grpc", 31) + literal(b"te", b"trailers")
# The second request reuses the dynamic table: te (62), content-type (63), authority (64), path (65).
REQUEST_2 = bytes([0x83, 0x86, 0xc1, 0xc0, 0xbf, 0xbe])
RESPONSE_HEAD = bytes([0x88]) + literal(b"", b"application/grpc", 31)
TRAILERS_OK = literal(b"grpc-status", b"0") + literal(b"grpc-message", b"")
# The server's table then holds grpc-message (62), grpc-status 0 (63), content-type (64): the
# second response names content-type by index and new grpc-status/grpc-message values by name.
RESPONSE_2 = bytes([0x88, 0xC0]) + literal(b"", b"5", 63) + literal(b"", b"no such order", 63)

HTTP2 = {
    "grpc-two-calls": conversation(
        (CLIENT, SETTINGS + frame(1, END_HEADERS, 1, REQUEST_1) + frame(0, END_STREAM, 1, GRPC_BODY)),
        (SERVER, SETTINGS + SETTINGS_ACK + frame(1, END_HEADERS, 1, RESPONSE_HEAD) + frame(0, 0, 1, GRPC_BODY)
         + frame(1, END_HEADERS | END_STREAM, 1, TRAILERS_OK)),
        (CLIENT, SETTINGS_ACK + frame(1, END_HEADERS, 3, REQUEST_2) + frame(0, END_STREAM, 3, GRPC_BODY)),
        (SERVER, frame(1, END_HEADERS | END_STREAM, 3, RESPONSE_2)),
    ),
    "get-continuation-404": conversation(
        (CLIENT, SETTINGS + frame(1, END_STREAM, 1, bytes([0x82, 0x86]) + literal(b"", b"/index.html", 4))
         + frame(9, END_HEADERS, 1, literal(b"", b"web:80", 1))),
        (SERVER, SETTINGS + frame(1, END_HEADERS | END_STREAM, 1, bytes([0x8d]))),
    ),
    "padded-priority-500": conversation(
        # HEADERS with PADDED (0x8) and PRIORITY (0x20): pad length, dependency, weight, block, padding.
        (CLIENT, SETTINGS + frame(1, END_HEADERS | END_STREAM | 0x8 | 0x20, 1,
                                  bytes([2]) + struct.pack(">I", 0) + bytes([15, 0x82, 0x86, 0x84])
                                  + literal(b"", b"api", 1) + b"\0\0")),
        (SERVER, frame(1, END_HEADERS, 1, bytes([0x8e])) + frame(0, END_STREAM, 1, b"oops")
         + frame(3, 0, 1, struct.pack(">I", 2)) + frame(7, 0, 0, struct.pack(">II", 1, 0))),
    ),
}


# ---- Kafka ----

class Kafka:
    """Kafka primitives, classic or compact (flexible) encoding."""

    def __init__(self, flexible=False):
        self.out, self.flexible = bytearray(), flexible

    def raw(self, data):
        self.out += data
        return self

    def i8(self, v):
        return self.raw(struct.pack(">b", v))

    def i16(self, v):
        return self.raw(struct.pack(">h", v))

    def i32(self, v):
        return self.raw(struct.pack(">i", v))

    def i64(self, v):
        return self.raw(struct.pack(">q", v))

    def uvarint(self, v):
        while v >= 0x80:
            self.out.append((v & 0x7F) | 0x80)
            v >>= 7
        return self.raw(bytes([v]))

    def string(self, s):
        s = s.encode()
        return self.uvarint(len(s) + 1).raw(s) if self.flexible else self.i16(len(s)).raw(s)

    def null_string(self):
        return self.uvarint(0) if self.flexible else self.i16(-1)

    def array(self, n):
        return self.uvarint(n + 1) if self.flexible else self.i32(n)

    def bytes_(self, data):
        return self.uvarint(len(data) + 1).raw(data) if self.flexible else self.i32(len(data)).raw(data)

    def tags(self):
        return self.uvarint(0) if self.flexible else self

    def framed(self):
        return struct.pack(">i", len(self.out)) + bytes(self.out)


def request_header(api_key, version, correlation_id, flexible):
    # client_id is a classic string in every header version.
    b = Kafka().i16(api_key).i16(version).i32(correlation_id).string("shop-client")
    b.flexible = flexible
    return b.tags()


def produce(version, correlation_id, topic, records):
    b = request_header(0, version, correlation_id, version >= 9)
    if version >= 3:
        b.null_string()
    return (b.i16(1).i32(1500).array(1).string(topic).array(1).i32(0).bytes_(records)
            .tags().tags().tags().framed())


def produce_response(version, correlation_id, topic, error):
    return (Kafka(version >= 9).i32(correlation_id).tags().array(1).string(topic).array(1).i32(0)
            .i16(error).i64(42).i64(-1).i64(0).tags().tags().i32(0).tags().framed())


def fetch(version, correlation_id, topic):
    b = request_header(1, version, correlation_id, version >= 12)
    if version <= 14:
        b.i32(-1)
    b.i32(500).i32(1).i32(52_428_800).i8(0)
    if version >= 7:
        b.i32(0).i32(-1)
    b.array(1)
    b.raw(b"\xab" * 16) if version >= 13 else b.string(topic)
    return b.array(1).i32(0).i64(0).i32(1_048_576).tags().tags().array(0).tags().framed()


def fetch_response(version, correlation_id, topic, top_error, partition_error):
    b = Kafka(version >= 12).i32(correlation_id).tags().i32(0)
    if version >= 7:
        b.i16(top_error).i32(0)
    return b.array(1).string(topic).array(1).i32(0).i16(partition_error).i64(10).framed()


KAFKA = {
    "produce-v7-fetch-v11": conversation(
        (CLIENT, produce(7, 1, "orders", b"record-batch")),
        (SERVER, produce_response(7, 1, "orders", 0)),
        (CLIENT, fetch(11, 2, "orders")),
        (SERVER, fetch_response(11, 2, "orders", 0, 1)),
    ),
    "flexible-produce-v9-fetch-v12": conversation(
        (CLIENT, produce(9, 7, "logs", b"\0" * 40) + fetch(12, 8, "logs")),
        (SERVER, fetch_response(12, 8, "logs", 0, 0)),
        (SERVER, produce_response(9, 7, "logs", 3)),
    ),
    "fetch-v13-topic-id-split": conversation(
        *split(CLIENT, fetch(13, 5, ""), 3, 11),
        (SERVER, fetch_response(13, 5, "", 0, 0)),
    ),
    "metadata-and-apiversions": conversation(
        (CLIENT, request_header(18, 3, 1, True).string("kafka-python").string("2.2").tags().framed()),
        (SERVER, Kafka().i32(1).i16(0).framed()),
        (CLIENT, request_header(3, 1, 2, False).array(1).string("orders").framed()),
        (SERVER, Kafka().i32(2).i32(0).framed()),
    ),
}


# ---- DNS (raw messages) ----

def dns_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def dns_message(ident, flags, question, answers):
    head = struct.pack(">HHHHHH", ident, flags, 1, len(answers), 0, 0)
    body = dns_name(question[0]) + struct.pack(">HH", question[1], 1)
    for rrtype, rdata in answers:
        # 0xc00c: a compression pointer to the question's name.
        body += struct.pack(">HHHIH", 0xC00C, rrtype, 1, 30, len(rdata)) + rdata
    return head + body


DNS = {
    "query-a": dns_message(0x1234, 0x0100, ("backend.default.svc.cluster.local", 1), []),
    "response-a-cname": dns_message(0x1234, 0x8180, ("www.example.com", 1),
                                    [(5, dns_name("example.com")), (1, bytes([93, 184, 216, 34]))]),
    "response-aaaa": dns_message(7, 0x8180, ("example.com", 28), [(28, bytes(15) + b"\x01")]),
    "nxdomain": dns_message(9, 0x8183, ("nope.example", 1), []),
}


def main():
    for target, seeds in {"http1": HTTP1, "http2": HTTP2, "kafka": KAFKA, "dns": DNS}.items():
        folder = ROOT / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
