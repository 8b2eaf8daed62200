"use strict";
// TestHub scenarios (protocol doc §7.1) for every transport/protocol pair the official client
// supports: WebSockets+JSON, WebSockets+MessagePack, SSE+JSON, LongPolling+JSON, LongPolling+MessagePack.

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { getUserAgentHeader } = require("@microsoft/signalr/dist/cjs/Utils");

const { startTestServer } = require("../lib/server");
const {
    COMBOS, ConnectionScope, closed, deferred, httpGet, rejectionOf, stopCleanly, transportName, within, signalR,
} = require("../lib/client");

const TEST_TIMEOUT = { timeout: 40_000 };
const UNICODE = "你好，世界！";
const ERROR_PREFIX = "An unexpected error occurred invoking";

let server;
before(async () => {
    server = await startTestServer();
});
after(async () => {
    if (server) {
        await server.stop();
    }
});

for (const combo of COMBOS) {
    const label = `${transportName(combo.transport)} + ${combo.protocol}`;
    const isMsgPack = combo.protocol === "messagepack";

    describe(label, () => {
        const scope = new ConnectionScope();
        afterEach(() => scope.dispose());

        /** A started connection to /testhub over this combo. */
        async function started(options = {}) {
            const connection = scope.hub(`${server.url}/testhub`, { ...combo, options });
            await within(connection.start(), "start()");
            return connection;
        }

        it("invokes Echo and gets the argument back, then stops without error", TEST_TIMEOUT, async () => {
            const connection = await started();
            assert.equal(connection.state, signalR.HubConnectionState.Connected);
            assert.equal(await within(connection.invoke("Echo", UNICODE), "Echo"), UNICODE);
            await stopCleanly(assert, connection);
            assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
        });

        it("sends Echo non-blocking (no completion expected) and stops without error", TEST_TIMEOUT, async () => {
            const connection = await started();
            await within(connection.send("Echo", UNICODE), "send(Echo)");
            // The connection still works after a non-blocking call, so the server sent nothing unexpected.
            assert.equal(await within(connection.invoke("Echo", "after send"), "Echo"), "after send");
            await stopCleanly(assert, connection);
        });

        it("reports the same connection id as GetCallerConnectionId", TEST_TIMEOUT, async () => {
            const connection = await started();
            assert.match(connection.connectionId, /^[A-Za-z0-9_-]{22}$/, "connectionId is 22 base64url characters");
            const serverId = await within(connection.invoke("GetCallerConnectionId"), "GetCallerConnectionId");
            assert.equal(serverId, connection.connectionId);
            await stopCleanly(assert, connection);
            assert.equal(connection.connectionId, null, "connectionId is null after stop");
        });

        it("rethrows ThrowException with the exact server text", TEST_TIMEOUT, async () => {
            const connection = await started();
            const err = await rejectionOf(connection.invoke("ThrowException", "An error occurred."), "ThrowException");
            assert.equal(err.message,
                `${ERROR_PREFIX} 'ThrowException' on the server. InvalidOperationException: An error occurred.`);
            // The connection survives a failed invocation.
            assert.equal(await within(connection.invoke("Echo", "still here"), "Echo"), "still here");
            await stopCleanly(assert, connection);
        });

        it("rejects an unknown hub method with the .NET binding-failure text", TEST_TIMEOUT, async () => {
            const connection = await started();
            const err = await rejectionOf(connection.invoke("NonExistentMethod", 1), "NonExistentMethod");
            assert.equal(err.message,
                "Failed to invoke 'NonExistentMethod' due to an error on the server. HubException: Method does not exist.");
            assert.equal(await within(connection.invoke("Echo", "ok"), "Echo"), "ok");
            await stopCleanly(assert, connection);
        });

        it("matches hub method names case-insensitively", TEST_TIMEOUT, async () => {
            const connection = await started();
            assert.equal(await within(connection.invoke("eCHO", "ci"), "eCHO"), "ci");
            await stopCleanly(assert, connection);
        });

        it("streams Stream as a, b, c then completes", TEST_TIMEOUT, async () => {
            const connection = await started();
            const items = [];
            const done = deferred();
            connection.stream("Stream").subscribe({
                next: (item) => items.push(item),
                complete: () => done.resolve(),
                error: (err) => done.reject(err),
            });
            await within(done.promise, "Stream completion");
            assert.deepEqual(items, ["a", "b", "c"]);
            await stopCleanly(assert, connection);
        });

        it("cancels InfiniteStream and receives StreamCanceled", TEST_TIMEOUT, async () => {
            const connection = await started();
            const canceled = deferred();
            connection.on("StreamCanceled", () => canceled.resolve());
            const streamError = deferred();
            const subscription = connection.stream("InfiniteStream").subscribe({
                next: () => {},
                complete: () => {},
                error: (err) => streamError.resolve(err),
            });
            subscription.dispose();
            await within(Promise.race([
                canceled.promise,
                streamError.promise.then((err) => { throw new Error(`stream errored: ${err}`); }),
            ]), "StreamCanceled after dispose()");
            assert.equal(await within(connection.invoke("Echo", "after cancel"), "Echo"), "after cancel");
            await stopCleanly(assert, connection);
        });

        it("sends StreamCanceled for each of 40 streams cancelled right after they start", TEST_TIMEOUT, async () => {
            // The client sends CancelInvocation immediately after StreamInvocation, often in the
            // same read: the method must still run (with a cancelled token) and react to it.
            const connection = await started();
            let canceled = 0;
            let waiter = null;
            connection.on("StreamCanceled", () => {
                canceled += 1;
                if (waiter) {
                    waiter.resolve();
                }
            });
            for (let i = 1; i <= 40; i += 1) {
                waiter = deferred();
                const subscription = connection.stream("InfiniteStream").subscribe({
                    next: () => {},
                    complete: () => {},
                    error: () => {},
                });
                subscription.dispose();
                if (canceled < i) {
                    await within(waiter.promise, `StreamCanceled for cancelled stream #${i}`, 5_000);
                }
                assert.equal(canceled, i, `exactly one StreamCanceled per cancelled stream (stream #${i})`);
            }
            await stopCleanly(assert, connection);
        });

        it("uploads a client stream (Subject) to StreamingConcat", TEST_TIMEOUT, async () => {
            const connection = await started();
            const subject = new signalR.Subject();
            const result = connection.invoke("StreamingConcat", subject);
            subject.next("Hello ");
            subject.next("world");
            subject.next("!");
            subject.complete();
            assert.equal(await within(result, "StreamingConcat result"), "Hello world!");
            await stopCleanly(assert, connection);
        });

        it("fails StreamingConcat with the client's stream error", TEST_TIMEOUT, async () => {
            const connection = await started();
            const subject = new signalR.Subject();
            const result = connection.invoke("StreamingConcat", subject);
            subject.next("Hello ");
            subject.error(new Error("Something bad"));
            const err = await rejectionOf(result, "StreamingConcat with an erroring stream");
            assert.equal(err.message, `${ERROR_PREFIX} 'StreamingConcat' on the server. HubException: Something bad`);
            await stopCleanly(assert, connection);
        });

        it("errors the stream of StreamThrowException with the exact text", TEST_TIMEOUT, async () => {
            const connection = await started();
            const outcome = deferred();
            connection.stream("StreamThrowException", "An error occurred.").subscribe({
                next: (item) => outcome.reject(new Error(`unexpected item ${JSON.stringify(item)}`)),
                complete: () => outcome.reject(new Error("stream completed without the expected error")),
                error: (err) => outcome.resolve(err),
            });
            const err = await within(outcome.promise, "StreamThrowException error");
            assert.equal(err.message,
                `${ERROR_PREFIX} 'StreamThrowException' on the server. InvalidOperationException: An error occurred.`);
            await stopCleanly(assert, connection);
        });

        it("rejects invoke of the streaming EmptyStream with the mismatch text", TEST_TIMEOUT, async () => {
            const connection = await started();
            const err = await rejectionOf(connection.invoke("EmptyStream"), "invoke(EmptyStream)");
            assert.equal(err.message,
                "The client attempted to invoke the streaming 'EmptyStream' method with a non-streaming invocation.");
            await stopCleanly(assert, connection);
        });

        it("rejects invoke of the streaming Stream with the mismatch text", TEST_TIMEOUT, async () => {
            const connection = await started();
            const err = await rejectionOf(connection.invoke("Stream"), "invoke(Stream)");
            assert.equal(err.message,
                "The client attempted to invoke the streaming 'Stream' method with a non-streaming invocation.");
            await stopCleanly(assert, connection);
        });

        it("rejects stream() of the non-streaming Echo with the mismatch text", TEST_TIMEOUT, async () => {
            const connection = await started();
            const outcome = deferred();
            connection.stream("Echo", "42").subscribe({
                next: (item) => outcome.reject(new Error(`unexpected item ${JSON.stringify(item)}`)),
                complete: () => outcome.reject(new Error("stream completed without the expected error")),
                error: (err) => outcome.resolve(err),
            });
            const err = await within(outcome.promise, "stream(Echo) error");
            assert.equal(err.message,
                "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation.");
            await stopCleanly(assert, connection);
        });

        it("receives Message from InvokeWithString (handler name case-insensitive)", TEST_TIMEOUT, async () => {
            const connection = await started();
            const message = "你好 SignalR！";
            const received = deferred();
            connection.on("mEssAge", (...args) => received.resolve(args));
            await within(connection.invoke("InvokeWithString", message), "InvokeWithString");
            assert.deepEqual(await within(received.promise, "Message"), [message]);
            await stopCleanly(assert, connection);
        });

        it("receives CustomObject from SendCustomObject", TEST_TIMEOUT, async () => {
            const connection = await started();
            const received = deferred();
            connection.on("CustomObject", (obj) => received.resolve(obj));
            await within(connection.send("SendCustomObject", { Name: "test", Value: 42 }), "send(SendCustomObject)");
            const obj = await within(received.promise, "CustomObject");
            assert.equal(obj.Name, "test");
            assert.equal(obj.Value, 42);
            await stopCleanly(assert, connection);
        });

        it("round-trips EchoComplexObject exactly", TEST_TIMEOUT, async () => {
            const connection = await started();
            const complex = {
                ByteArray: isMsgPack ? new Uint8Array([0x68, 0x65, 0x6c, 0x6c, 0x6f]) : "aGVsbG8=",
                DateTime: isMsgPack ? new Date(Date.UTC(2002, 3, 1, 10, 20, 15)) : "2002-04-01T10:20:15Z",
                Guid: "00010203-0405-0607-0706-050403020100",
                IntArray: [0x01, 0x02, 0x03, 0xff],
                String: "Hello, World!",
            };
            const value = await within(connection.invoke("EchoComplexObject", complex), "EchoComplexObject");
            assertComplexObject(value, complex);
            await stopCleanly(assert, connection);
        });

        it("receives SendComplexObject with the exact payload", TEST_TIMEOUT, async () => {
            const connection = await started();
            const expected = {
                ByteArray: isMsgPack ? new Uint8Array([1, 2, 3]) : "AQID",
                DateTime: isMsgPack ? new Date(Date.UTC(2000, 0, 1)) : "2000-01-01T00:00:00Z",
                Guid: "00010203-0405-0607-0706-050403020100",
                IntArray: [1, 2, 3],
                String: "hello world",
            };
            const value = await within(connection.invoke("SendComplexObject"), "SendComplexObject");
            assertComplexObject(value, expected);
            await stopCleanly(assert, connection);
        });

        /** Exact comparison; for msgpack the byte array must arrive as bin and the date as a timestamp. */
        function assertComplexObject(actual, expected) {
            assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), "exactly the five PascalCase keys");
            if (isMsgPack) {
                assert.ok(actual.ByteArray instanceof Uint8Array,
                    `ByteArray must be msgpack bin (Uint8Array), got ${Object.prototype.toString.call(actual.ByteArray)}`);
                assert.ok(actual.DateTime instanceof Date,
                    `DateTime must be a msgpack timestamp (Date), got ${JSON.stringify(actual.DateTime)}`);
                assert.deepEqual({ ...actual, ByteArray: Array.from(actual.ByteArray) },
                    { ...expected, ByteArray: Array.from(expected.ByteArray) });
            } else {
                assert.deepEqual(actual, expected);
            }
        }

        it("reports the active transport name", TEST_TIMEOUT, async () => {
            const connection = await started();
            assert.equal(await within(connection.invoke("GetActiveTransportName"), "GetActiveTransportName"),
                transportName(combo.transport));
            await stopCleanly(assert, connection);
        });

        it("passes the library User-Agent to GetHeader", TEST_TIMEOUT, async () => {
            const connection = await started();
            const [name, value] = getUserAgentHeader();
            assert.equal(name, "User-Agent");
            assert.equal(await within(connection.invoke("GetHeader", name), "GetHeader"), value);
            await stopCleanly(assert, connection);
        });

        it("passes user headers (options.headers override the User-Agent)", TEST_TIMEOUT, async () => {
            const connection = await started({ headers: { "User-Agent": "Custom Agent", "X-HEADER": "VALUE" } });
            assert.equal(await within(connection.invoke("GetHeader", "User-Agent"), "GetHeader"), "Custom Agent");
            assert.equal(await within(connection.invoke("GetHeader", "X-HEADER"), "GetHeader"), "VALUE");
            assert.equal(await within(connection.invoke("GetHeader", "X-Not-Sent"), "GetHeader"), null);
            await stopCleanly(assert, connection);
        });

        it("keeps negotiate cookies and drops the expired one", TEST_TIMEOUT, async () => {
            const connection = await started();
            assert.equal(await within(connection.invoke("GetCookie", "testCookie"), "GetCookie"), "testValue");
            assert.equal(await within(connection.invoke("GetCookie", "testCookie2"), "GetCookie"), "testValue2");
            assert.equal(await within(connection.invoke("GetCookie", "expiredCookie"), "GetCookie"), null);
            await stopCleanly(assert, connection);
        });

        it("answers client results through /clientresult: value, thrown error, no result", TEST_TIMEOUT, async () => {
            const withValue = await started();
            withValue.on("Result", () => 10);
            const throwing = await started();
            throwing.on("Result", () => {
                throw new Error("from callback");
            });
            const silent = await started();

            const asked = async (connection) => {
                const { status, text } = await within(
                    httpGet(`${server.url}/clientresult/${connection.connectionId}`), "GET /clientresult");
                assert.equal(status, 200);
                return text;
            };
            assert.equal(await asked(withValue), "10");
            assert.equal(await asked(throwing), "Error: from callback");
            assert.equal(await asked(silent), "Client didn't provide a result.");
            for (const connection of [withValue, throwing, silent]) {
                await stopCleanly(assert, connection);
            }
        });

        it("can be started again after a stop", TEST_TIMEOUT, async () => {
            const connection = await started();
            const firstId = connection.connectionId;
            await stopCleanly(assert, connection);
            await within(connection.start(), "second start()");
            assert.notEqual(connection.connectionId, firstId, "a restart negotiates a new connection");
            assert.equal(await within(connection.invoke("Echo", UNICODE), "Echo"), UNICODE);
            await stopCleanly(assert, connection);
        });

        it("closes with no error when stopped while a stream is open", TEST_TIMEOUT, async () => {
            const connection = await started();
            const streamEnded = deferred();
            connection.stream("InfiniteStream").subscribe({
                next: () => {},
                complete: () => streamEnded.resolve("complete"),
                error: (err) => streamEnded.resolve(err),
            });
            // The invocation is on the wire once an invoke sent after it has completed.
            assert.equal(await within(connection.invoke("Echo", "x"), "Echo"), "x");
            const closeError = closed(connection);
            await within(connection.stop(), "stop()");
            assert.equal(await within(closeError, "onclose"), undefined);
            const ended = await within(streamEnded.promise, "stream end on stop");
            assert.ok(ended instanceof Error, "the client errors open streams on stop");
        });
    });
}
