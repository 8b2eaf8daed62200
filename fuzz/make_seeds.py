#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/<target>/) from the golden vectors of the
Redis backplane wire reference (§8), the protocol's examples and the crates' test fixtures.

Run from anywhere: python3 fuzz/make_seeds.py. Seeds are small on purpose; what the fuzzer finds
grows in fuzz/corpus/<target>/ (not committed).
"""
import hashlib
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
RS = b"\x1e"


def h(spec):
    return bytes.fromhex(spec.replace(" ", ""))


def write(target, seeds):
    folder = os.path.join(ROOT, target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for seed in seeds:
        if isinstance(seed, str):
            seed = seed.encode()
        name = hashlib.sha1(seed).hexdigest()[:16]
        with open(os.path.join(folder, name), "wb") as f:
            f.write(seed)


JSON_MESSAGES = [
    b'{"arguments":["hi"],"invocationId":"0","target":"Echo","type":1}',
    b'{"type":1,"target":"TenantCreated","arguments":["t1"]}',
    b'{"type":1,"target":"target","arguments":[]}',
    b'{"arguments":[],"invocationId":"1","streamIds":["2"],"target":"StreamingConcat","type":1}',
    b'{"invocationId":"2","item":"Hello ","type":2}',
    b'{"invocationId":"2","type":3}',
    b'{"error":"Something bad","invocationId":"2","type":3}',
    b'{"type":3,"invocationId":"1","result":1}',
    b'{"arguments":[],"invocationId":"3","target":"InfiniteStream","type":4}',
    b'{"invocationId":"3","type":5}',
    b'{"type":6}',
    b'{"type":7,"error":"bye","allowReconnect":true}',
    b'{"sequenceId":5,"type":8}',
    b'{"sequenceId":5,"type":9}',
    b'{"type":1,"headers":{"a":"b"},"target":"T","arguments":[1.5,-2,18446744073709551615,{"x":[null,true,"\\u00e9"]}]}',
    b'{"type":99,"future":1}',
]
TENANT_CREATED = (
    b'{"type":1,"target":"TenantCreated","arguments":[{"type":"success","message":"Tenant \'Test Tenant\' has been created '
    b'successfully!","userId":"test-user","tenantId":"test-tenant-123","tenantName":"Test Tenant","timestamp":'
    b'"2025-01-01T00:00:00.0000000Z"}]}'
)
JSON_MESSAGES.append(TENANT_CREATED)

MSGPACK_MESSAGES = [
    h("0d 96 01 80 c0 a6 74 61 72 67 65 74 90 90"),  # Invocation("target", []), §8.2
    h("17 96 01 80 c0 ad 54 65 6e 61 6e 74 43 72 65 61 74 65 64 91 a2 74 31 90"),  # TenantCreated("t1"), §8.3
    h("09 95 03 80 a3 78 79 7a 03 2a"),  # Completion xyz, result 42, §8.1
    h("02 91 06"),  # Ping
    h("04 93 07 c0 c2"),  # Close
    h("06 95 03 80 a1 31 01 a3 62 61 64"),  # Completion error "bad"
    h("05 94 02 80 a1 31 2a"),  # StreamItem
    h("04 93 05 80 a1 31"),  # CancelInvocation
    h("03 92 08 05"),  # Ack 5
    h("03 92 09 05"),  # Sequence 5
    h("0f 96 01 81 a1 61 a1 62 a1 31 a1 54 91 d6 ff 00 00 00 00"),  # headers + timestamp ext
    h("0a 96 04 80 a1 37 a1 53 90 91 a1 38"),  # StreamInvocation with stream id
]

WS_MASK = b"\x01\x02\x03\x04"


def ws_frame(opcode, payload, fin=True):
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + WS_MASK + bytes(b ^ WS_MASK[i % 4] for i, b in enumerate(payload))


def main():
    handshakes = [b'{"protocol":"json","version":1}', b'{"protocol":"messagepack","version":2}', b"{}", b'{"error":"Unsupported"}',
                  b'{"protocol":"json","version":1,"minorVersion":0}']
    write("handshake", [bytes([split]) + hs + RS + rest for split in (0, 5) for hs in handshakes for rest in (b"", b'{"type":6}' + RS)])
    write("hub_json", [bytes([size]) + m + RS for m in JSON_MESSAGES for size in (0,)] + [b"\x07" + RS.join(JSON_MESSAGES[:6]) + RS])
    write("hub_msgpack", [b"\x00" + m for m in MSGPACK_MESSAGES] + [b"\x03" + b"".join(MSGPACK_MESSAGES)])
    write("framing", [b"\xff" + JSON_MESSAGES[0] + RS, b"\x10" + MSGPACK_MESSAGES[0], b"\x00" + h("ff ff ff ff 07"), b"\x05" + h("80 80 01") + b"x" * 128])

    ws = [
        ws_frame(1, b'{"protocol":"json","version":1}\x1e'),
        ws_frame(2, MSGPACK_MESSAGES[0]),
        ws_frame(1, b"hel", fin=False) + ws_frame(9, b"ping") + ws_frame(0, b"lo"),
        ws_frame(2, b"x" * 200) + ws_frame(10, b""),
        ws_frame(8, (1000).to_bytes(2, "big") + b"bye"),
        ws_frame(8, b""),
        ws_frame(2, b"y" * 70000),
    ]
    write("websocket_frames", [bytes([cfg]) + frame for frame in ws for cfg in (0, 0x0d)])
    write("websocket_roundtrip", [os.urandom(64) for _ in range(4)] + [bytes(range(256))])

    write("query_cookie", [
        "id=hWUS7bmKU0SMZ3Xk7yW1vA&negotiateVersion=1",
        "access_token=a.b.c&x=%41%zz%4&y=+plus+&&=&%E2%82%AC",
        "negotiateVersion= -7 &id=short",
        "diquis_auth=abc; diquis_refresh=\"quoted\"\n; =x;y",
    ])
    write("http_head", [
        b"\x00GET /hub?id=x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x03POST /hub/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x07POST /hub HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"\x01GET /hub HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" + ws[0],
        b"\x00GET / HTTP/1.1\nHost: a\n\n",
    ])

    backplane = [
        h("91 00"), h("91 2a"), h("91 cc b4"), h("91 cd 01 80"), h("91 ce 00 01 11 70"),
        h("95 2a a1 53 01 a1 47 a1 43"), h("95 2a a1 53 02 a1 47 a1 43"),
        h("92 90 82 a2 70 31 c4 01 2a a2 70 32 c4 01 2a"),
        h("92 91 a1 61 82 a2 70 31 c4 01 2a a2 70 32 c4 01 2a"),
        h("92 96 a1 61 a1 62 a1 63 a1 64 a1 65 a1 66 82 a2 70 31 c4 01 2a a2 70 32 c4 01 2a"),
        h("92 a4 6a 73 6f 6e c4 28") + b'{"type":3,"invocationId":"1","result":1}',
        h("92 ab 6d 65 73 73 61 67 65 70 61 63 6b c4 09 95 03 80 a3 78 79 7a 03 2a"),
        h("92 90 82 a4 6a 73 6f 6e c4 2c") + b'{"type":1,"target":"target","arguments":[]}' + RS
        + h("ab 6d 65 73 73 61 67 65 70 61 63 6b c4 0e") + MSGPACK_MESSAGES[0],
        h("92 92 a6 63 6f 6e 6e 2d 41 a6 63 6f 6e 6e 2d 42 81 a4 6a 73 6f 6e c4 37") + JSON_MESSAGES[1] + RS,
        h("92 90 81 a4 6a 73 6f 6e c4 fd") + TENANT_CREATED + RS,
        # A client-result invocation: 4 items, invocation id and return channel.
        h("94 90 81 a4 6a 73 6f 6e c4 2c") + b'{"type":1,"target":"target","arguments":[]}' + RS + h("a1 31 a6 72 65 74 75 72 6e"),
    ]
    write("backplane", backplane)
    write("backplane_roundtrip", [os.urandom(48) for _ in range(4)])
    write("hub_roundtrip", [os.urandom(48) for _ in range(4)])

    write("connection_strings", [
        "localhost:6379,password=secret,ssl=true,abortConnect=false,channelPrefix=Diquis",
        "redis://user:p%40ss@cache.example:6380/2?ssl=true",
        "rediss://:pw@[::1]:6379",
        "host1:6379,host2,defaultDatabase=3,connectTimeout=5000,syncTimeout=1000,name=web",
        "Host=localhost;Port=5432;Database=diquis;Username=postgres;Password=secret;SSL Mode=Require",
        "Server=db;User ID=u;Password='a;b';Include Error Detail=true",
        "postgres://u:p@h:5433/db?sslmode=disable",
        "sqlite://data/app.db?mode=rwc",
        "app.db",
    ])
    write("appsettings", [
        '{ "ConnectionStrings": { "DefaultConnection": "Host=base;Database=d;Username=u", "RedisConnection": "base:6379" },\n'
        '  // comment\n  "Urls": "http://127.0.0.1:2222", "Jwt": { "ExpiryMinutes": 5, "Key": "0123456789abcdef0123456789abcdef" },\n'
        '  "SignalR": { "HandshakeTimeout": "00:00:15", "KeepAliveInterval": "1.00:00:00.5" }, "AllowedOrigins": ["http://a", "http://b"] }'
        '\0ConnectionStrings__DefaultConnection=Server=;Database=d\nASPNETCORE_URLS=http://0.0.0.0:5000\n'
        '\0--urls http://127.0.0.1:5555 /SignalR:ChannelPrefix=FromFlag',
        '{ "Security": { "RateLimit": { "PerAddress": { "PermitLimit": 5 } } }, "ForwardedHeaders": { "Headers": "XForwarded", '
        '"KnownProxies": ["10.0.0.1"], "KnownNetworks": ["10.0.0.0/8"], "ForwardLimit": 2 }, "Kestrel": { "Limits": '
        '{ "MaxRequestLineSize": 8192 } } }\0Jobs__WorkerCount=3\n',
    ])
    write("jwt_session", [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhQGIuYyIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJl",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "diquis_auth=eyJhbGciOiJIUzI1NiJ9.e30.x; diquis_refresh=abc; other=1",
    ])
    write("cron", ["*/5 * * * *\nEurope/Berlin", "0 0 * * MON-FRI", "0 30 9 1,15 * ? *\nAmerica/New_York", "0 0 0 31 2 *",
                   "59 23 L * *\nAustralia/Lord_Howe", "@daily"])
    write("request_values", [
        "/path?x=1", "//evil.example", "/\\evil", "/%2F%2Fevil", "~/home",
        "203.0.113.7, 10.0.0.1\nhttps\nexample.com\nfor=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8::1]:4711\"",
        "192.168.0.0/16", "00:00:30", "1.02:03:04.5000000",
        "http://0.0.0.0:5000;http://[::1]:5001",
    ])


if __name__ == "__main__":
    main()
