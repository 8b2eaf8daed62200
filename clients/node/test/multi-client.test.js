"use strict";
// Several clients at once, on different transports and protocols, through the TestHub methods
// SendToAll / SendToGroup / SendToUser / SendToConnection / JoinGroup / LeaveGroup.
//
// "Nobody else got it" is checked without waiting for time to pass: after each targeted send,
// the sender invokes SendToAll with a unique fence. A connection's messages arrive in order, so
// once a client has received the fence it has received everything sent to it before.

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");

const { startTestServer } = require("../lib/server");
const { ConnectionScope, deferred, httpGet, stopCleanly, within, signalR } = require("../lib/client");

const { HttpTransportType } = signalR;
const TEST_TIMEOUT = { timeout: 60_000 };

let server;
before(async () => {
    server = await startTestServer();
});
after(async () => {
    if (server) {
        await server.stop();
    }
});

/** A started client that records every `Message` it receives. */
class Recorder {
    constructor(name, connection) {
        this.name = name;
        this.connection = connection;
        this.messages = [];
        this.waiters = [];
        connection.on("Message", (msg) => {
            this.messages.push(msg);
            for (const waiter of this.waiters.filter((w) => w.msg === msg)) {
                waiter.resolve();
            }
            this.waiters = this.waiters.filter((w) => w.msg !== msg);
        });
    }

    /** Resolves once `msg` has been received (immediately if it already was). */
    received(msg) {
        if (this.messages.includes(msg)) {
            return Promise.resolve();
        }
        const d = deferred();
        this.waiters.push({ msg, resolve: d.resolve });
        return within(d.promise, `${this.name} to receive ${JSON.stringify(msg)}`);
    }

    /** Messages received so far, from position `from` on. */
    since(from) {
        return this.messages.slice(from);
    }
}

describe("multiple clients", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());
    let fenceCount = 0;

    async function client(name, settings) {
        const connection = scope.hub(`${server.url}/testhub`, settings);
        const recorder = new Recorder(name, connection);
        await within(connection.start(), `${name} start()`);
        return recorder;
    }

    /** Three clients on three different transport/protocol pairs. */
    async function trio(userToken) {
        const a = await client("A (WebSockets+json)", {
            transport: HttpTransportType.WebSockets,
            protocol: "json",
            options: userToken ? { accessTokenFactory: () => userToken } : {},
        });
        const b = await client("B (LongPolling+messagepack)", {
            transport: HttpTransportType.LongPolling, protocol: "messagepack",
        });
        const c = await client("C (ServerSentEvents+json)", {
            transport: HttpTransportType.ServerSentEvents, protocol: "json",
        });
        return [a, b, c];
    }

    /**
     * Runs `send`, then a fence broadcast, and returns what each client received in between
     * (excluding the fence).
     */
    async function deliveries(clients, sender, send) {
        const marks = clients.map((c) => c.messages.length);
        await within(send(), "the targeted send");
        fenceCount += 1;
        const fence = `fence-${fenceCount}`;
        await within(sender.connection.invoke("SendToAll", fence), "SendToAll(fence)");
        await Promise.all(clients.map((c) => c.received(fence)));
        return clients.map((c, i) => c.since(marks[i]).filter((m) => m !== fence));
    }

    it("SendToAll reaches every client exactly once", TEST_TIMEOUT, async () => {
        const clients = await trio();
        const [a, b, c] = clients;
        const got = await deliveries(clients, b, () => b.connection.invoke("SendToAll", "to everyone ☃"));
        assert.deepEqual(got, [["to everyone ☃"], ["to everyone ☃"], ["to everyone ☃"]]);
        for (const r of [a, b, c]) {
            await stopCleanly(assert, r.connection);
        }
    });

    it("SendToGroup reaches members only, and LeaveGroup removes a member", TEST_TIMEOUT, async () => {
        const clients = await trio();
        const [a, b, c] = clients;
        await within(a.connection.invoke("JoinGroup", "blue"), "A JoinGroup");
        await within(b.connection.invoke("JoinGroup", "blue"), "B JoinGroup");
        await within(c.connection.invoke("JoinGroup", "red"), "C JoinGroup red");

        let got = await deliveries(clients, c, () => c.connection.invoke("SendToGroup", "blue", "blue-1"));
        assert.deepEqual(got, [["blue-1"], ["blue-1"], []], "members A and B get it, C (not a member, the sender) not");

        got = await deliveries(clients, a, () => a.connection.invoke("SendToGroup", "red", "red-1"));
        assert.deepEqual(got, [[], [], ["red-1"]]);

        // Joining twice must not duplicate deliveries.
        await within(a.connection.invoke("JoinGroup", "blue"), "A JoinGroup again");
        await within(b.connection.invoke("LeaveGroup", "blue"), "B LeaveGroup");
        got = await deliveries(clients, c, () => c.connection.invoke("SendToGroup", "blue", "blue-2"));
        assert.deepEqual(got, [["blue-2"], [], []], "after LeaveGroup only A is left in blue");

        got = await deliveries(clients, c, () => c.connection.invoke("SendToGroup", "nobody-here", "void"));
        assert.deepEqual(got, [[], [], []], "a group with no members reaches nobody");

        for (const r of [a, b, c]) {
            await stopCleanly(assert, r.connection);
        }
    });

    it("SendToConnection reaches exactly that connection", TEST_TIMEOUT, async () => {
        const clients = await trio();
        const [a, b, c] = clients;
        let got = await deliveries(clients, a,
            () => a.connection.invoke("SendToConnection", b.connection.connectionId, "just B"));
        assert.deepEqual(got, [[], ["just B"], []]);
        got = await deliveries(clients, a,
            () => a.connection.invoke("SendToConnection", c.connection.connectionId, "just C"));
        assert.deepEqual(got, [[], [], ["just C"]]);
        got = await deliveries(clients, a,
            () => a.connection.invoke("SendToConnection", "AAAAAAAAAAAAAAAAAAAAAA", "to nobody"));
        assert.deepEqual(got, [[], [], []], "an unknown connection id reaches nobody");
        for (const r of [a, b, c]) {
            await stopCleanly(assert, r.connection);
        }
    });

    it("SendToUser reaches the connections of that user only", TEST_TIMEOUT, async () => {
        const { status, text: token } = await within(httpGet(`${server.url}/generateJwtToken`), "GET /generateJwtToken");
        assert.equal(status, 200);
        const clients = await trio(token);
        const [a, b, c] = clients;
        // A second connection of the same user, on another transport.
        const a2 = await client("A2 (LongPolling+json, same user)", {
            transport: HttpTransportType.LongPolling,
            protocol: "json",
            options: { accessTokenFactory: () => token },
        });
        const all = [a, b, c, a2];
        let got = await deliveries(all, c, () => c.connection.invoke("SendToUser", "testuser", "for testuser"));
        assert.deepEqual(got, [["for testuser"], [], [], ["for testuser"]],
            "both connections authenticated as testuser get it; anonymous ones do not");
        got = await deliveries(all, c, () => c.connection.invoke("SendToUser", "someone-else", "not for us"));
        assert.deepEqual(got, [[], [], [], []]);
        for (const r of all) {
            await stopCleanly(assert, r.connection);
        }
    });

    it("a stopped client no longer receives group or broadcast messages", TEST_TIMEOUT, async () => {
        const clients = await trio();
        const [a, b, c] = clients;
        await within(b.connection.invoke("JoinGroup", "green"), "B JoinGroup");
        await within(c.connection.invoke("JoinGroup", "green"), "C JoinGroup");
        await stopCleanly(assert, b.connection);
        const remaining = [a, c];
        const got = await deliveries(remaining, a, () => a.connection.invoke("SendToGroup", "green", "green-1"));
        assert.deepEqual(got, [[], ["green-1"]]);
        assert.deepEqual(b.messages, [], "B received nothing after its stop");
        for (const r of remaining) {
            await stopCleanly(assert, r.connection);
        }
    });
});
