"use strict";
// Stateful reconnect (protocol doc §5.3): the official client with withStatefulReconnect() talks to
// /testhub through a TCP proxy that tears the WebSocket in the middle of the server's stream and
// keeps the link down while more messages are produced. Every message must arrive exactly once and
// in order, on the same server connection.

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { once } = require("node:events");

const { startTestServer } = require("../lib/server");
const { CuttingProxy } = require("../lib/proxy");
const { ConnectionScope, deferred, stopCleanly, within, signalR } = require("../lib/client");

const { HttpTransportType } = signalR;
const TEST_TIMEOUT = { timeout: 60_000 };
const BEFORE_CUT = 400;
const DURING_OUTAGE = 100;

let server;
before(async () => {
    server = await startTestServer();
});
after(async () => {
    if (server) {
        await server.stop();
    }
});

/**
 * Asserts `actual` is exactly `expected`, and on failure says what went wrong in a few words:
 * the first divergence, what is missing and what arrived twice.
 */
function assertExactlyOnceInOrder(actual, expected) {
    if (actual.length === expected.length && actual.every((m, i) => m === expected[i])) {
        return;
    }
    const seen = new Map();
    for (const m of actual) {
        seen.set(m, (seen.get(m) || 0) + 1);
    }
    const missing = expected.filter((m) => !seen.has(m));
    const duplicated = [...seen].filter(([, n]) => n > 1).map(([m]) => m);
    const unexpected = actual.filter((m) => !expected.includes(m));
    const at = actual.findIndex((m, i) => m !== expected[i]);
    const summary = (list) => `${list.length}${list.length ? ` (${list.slice(0, 8).join(", ")}${list.length > 8 ? ", …" : ""})` : ""}`;
    assert.fail(`messages not delivered exactly once in order: got ${actual.length}, expected ${expected.length}; ` +
        `first divergence at index ${at} (expected ${expected[at]}, got ${actual[at]}); ` +
        `missing ${summary(missing)}; duplicated ${summary(duplicated)}; unexpected ${summary(unexpected)}`);
}

/** Records `Message` arguments and resolves waiters once a given message has arrived. */
function recordMessages(connection) {
    const messages = [];
    const waiters = new Map();
    connection.on("Message", (msg) => {
        messages.push(msg);
        const waiter = waiters.get(msg);
        if (waiter) {
            waiters.delete(msg);
            waiter.resolve();
        }
    });
    return {
        messages,
        until(msg) {
            if (messages.includes(msg)) {
                return Promise.resolve();
            }
            const d = deferred();
            waiters.set(msg, d);
            return within(d.promise, `Message ${JSON.stringify(msg)} (received ${messages.length} so far)`, 30_000);
        },
    };
}

for (const protocol of ["json", "messagepack"]) {
    describe(`stateful reconnect over WebSockets + ${protocol}`, () => {
        const scope = new ConnectionScope();
        let proxy;
        afterEach(async () => {
            await scope.dispose();
            if (proxy) {
                await proxy.close();
                proxy = undefined;
            }
        });

        /** A stateful-reconnect client through a fresh proxy; asserts the feature was negotiated. */
        async function statefulClient() {
            proxy = new CuttingProxy(server.url);
            await proxy.listen();
            const connection = scope.hub(`${proxy.url}/testhub`, {
                transport: HttpTransportType.WebSockets,
                protocol,
                configure: (builder) => builder.withStatefulReconnect(),
            });
            const recorder = recordMessages(connection);
            await within(connection.start(), "start()");
            assert.equal(connection.connection.features.reconnect, true,
                "negotiate must answer useStatefulReconnect:true on /testhub when the client asks");
            assert.equal(proxy.upgrades, 1);
            return { connection, recorder };
        }

        /** After the cut and the outage: lets the reconnect through and checks it reused the connection. */
        async function reconnect(connection, firstId) {
            const upgraded = once(proxy, "upgrade");
            proxy.release();
            await within(upgraded, "the client's reconnect WebSocket");
            assert.equal(proxy.upgrades, 2, "exactly one reconnect WebSocket");
            assert.equal(connection.state, signalR.HubConnectionState.Connected);
            assert.equal(connection.connectionId, firstId, "the client keeps its connection id");
        }

        it("client-driven: InvokeWithString sends and Message replies survive a cut", TEST_TIMEOUT, async () => {
            const { connection, recorder } = await statefulClient();
            const firstId = connection.connectionId;
            const cut = proxy.cutWebSocketAfter(protocol === "json" ? 4000 : 2000, { holdAfterCut: true });

            const expected = [];
            for (let i = 0; i < BEFORE_CUT; i += 1) {
                expected.push(`c${i}`);
                await within(connection.send("InvokeWithString", `c${i}`), `send c${i}`);
            }
            await within(cut, "the proxy to cut the WebSocket mid-stream");
            // The link is down: these sends wait in the client's buffer and are replayed later.
            const outageSends = [];
            for (let i = BEFORE_CUT; i < BEFORE_CUT + DURING_OUTAGE; i += 1) {
                expected.push(`c${i}`);
                outageSends.push(connection.send("InvokeWithString", `c${i}`));
            }
            await reconnect(connection, firstId);
            await within(Promise.all(outageSends), "sends buffered during the outage");

            expected.push("c-fence");
            await within(connection.send("InvokeWithString", "c-fence"), "send fence");
            await recorder.until("c-fence");
            assertExactlyOnceInOrder(recorder.messages, expected);
            assert.equal(await within(connection.invoke("GetCallerConnectionId"), "GetCallerConnectionId"), firstId,
                "the server kept the same connection across the reconnect");
            await stopCleanly(assert, connection);
        });

        it("server-driven: messages sent to the connection or its group while its link is down are replayed", TEST_TIMEOUT, async () => {
            const { connection, recorder } = await statefulClient();
            const firstId = connection.connectionId;
            // The sender talks to the server directly, not through the proxy.
            await within(connection.invoke("JoinGroup", "stateful"), "JoinGroup");
            const sender = scope.hub(`${server.url}/testhub`, { transport: HttpTransportType.WebSockets });
            await within(sender.start(), "sender start()");
            const cut = proxy.cutWebSocketAfter(protocol === "json" ? 4000 : 2000, { holdAfterCut: true });

            const expected = [];
            let i = 0;
            let cutDone = false;
            cut.then(() => {
                cutDone = true;
            });
            // Keep sending until the cut has happened (bounded), then some more during the outage.
            while (!cutDone) {
                assert.ok(i < 5000, "the proxy saw enough server bytes to cut within 5000 messages");
                expected.push(`s${i}`);
                await within(sender.invoke("SendToConnection", firstId, `s${i}`), "SendToConnection");
                i += 1;
            }
            // During the outage the server must keep the connection, and its group membership.
            for (let k = 0; k < DURING_OUTAGE; k += 1, i += 1) {
                expected.push(`s${i}`);
                if (k % 2 === 0) {
                    await within(sender.invoke("SendToConnection", firstId, `s${i}`), "SendToConnection during outage");
                } else {
                    await within(sender.invoke("SendToGroup", "stateful", `s${i}`), "SendToGroup during outage");
                }
            }
            await reconnect(connection, firstId);

            expected.push("s-fence");
            await within(sender.invoke("SendToConnection", firstId, "s-fence"), "SendToConnection fence");
            await recorder.until("s-fence");
            assertExactlyOnceInOrder(recorder.messages, expected);
            assert.equal(await within(connection.invoke("Echo", "after"), "Echo"), "after");
            await stopCleanly(assert, connection);
            await stopCleanly(assert, sender);
        });
    });
}

describe("stateful reconnect negotiation", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());

    it("is not enabled when the client does not ask", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/testhub`, { transport: HttpTransportType.WebSockets });
        await within(connection.start(), "start()");
        assert.notEqual(connection.connection.features.reconnect, true);
        assert.equal(await within(connection.invoke("Echo", "plain"), "Echo"), "plain");
        await stopCleanly(assert, connection);
    });

    for (const transport of [HttpTransportType.ServerSentEvents, HttpTransportType.LongPolling]) {
        it(`falls back to a normal connection over ${HttpTransportType[transport]}`, TEST_TIMEOUT, async () => {
            const connection = scope.hub(`${server.url}/testhub`, {
                transport,
                configure: (builder) => builder.withStatefulReconnect(),
            });
            await within(connection.start(), "start()");
            assert.notEqual(connection.connection.features.reconnect, true, "stateful reconnect is WebSockets-only");
            assert.equal(await within(connection.invoke("Echo", "plain"), "Echo"), "plain");
            await stopCleanly(assert, connection);
        });
    }
});
