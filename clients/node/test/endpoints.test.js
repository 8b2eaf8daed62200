"use strict";
// The other endpoints of the functional-test server (protocol doc §7.1): transport filtering,
// authorization, redirects, negotiate failures, skipNegotiation and automatic reconnect.

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");

const { startTestServer } = require("../lib/server");
const {
    TRANSPORTS, ConnectionScope, deferred, httpGet, rejectionOf, stopCleanly, transportName, within, signalR,
} = require("../lib/client");

const { HttpTransportType } = signalR;
const TEST_TIMEOUT = { timeout: 40_000 };
const UNICODE = "你好，世界！";

let server;
before(async () => {
    server = await startTestServer();
});
after(async () => {
    if (server) {
        await server.stop();
    }
});

/** A token from the server's /generateJwtToken, as the official tests fetch it. */
async function jwtToken() {
    const { status, text } = await within(httpGet(`${server.url}/generateJwtToken`), "GET /generateJwtToken");
    assert.equal(status, 200, "GET /generateJwtToken answers 200");
    assert.match(text, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/, "a compact JWT");
    return text;
}

/** Resolves once the connection has gone through an automatic reconnect, with the new id. */
function reconnectedOnce(connection) {
    const reconnecting = deferred();
    const reconnected = deferred();
    connection.onreconnecting(() => reconnecting.resolve());
    connection.onreconnected((id) => reconnected.resolve(id));
    return { reconnecting: reconnecting.promise, reconnected: reconnected.promise };
}

describe("/testhub-nowebsockets", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());

    it("picks ServerSentEvents for JSON", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/testhub-nowebsockets`, { protocol: "json" });
        await within(connection.start(), "start()");
        assert.equal(await within(connection.invoke("GetActiveTransportName"), "GetActiveTransportName"),
            "ServerSentEvents");
        await stopCleanly(assert, connection);
    });

    it("picks LongPolling for MessagePack", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/testhub-nowebsockets`, { protocol: "messagepack" });
        await within(connection.start(), "start()");
        assert.equal(await within(connection.invoke("GetActiveTransportName"), "GetActiveTransportName"),
            "LongPolling");
        await stopCleanly(assert, connection);
    });

    it("refuses a client that allows WebSockets only", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/testhub-nowebsockets`, { transport: HttpTransportType.WebSockets });
        const err = await rejectionOf(connection.start(), "start() over WebSockets only");
        assert.match(err.message, /^Unable to connect to the server with any of the available transports\./);
    });
});

describe("/authorizedhub", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());

    it("refuses negotiate without a token with 401 and the exact client message", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/authorizedhub`);
        const err = await rejectionOf(connection.start(), "start() without a token");
        assert.equal(err.message, "Failed to complete negotiation with the server: Error: Unauthorized: Status code '401'");
    });

    it("refuses a bad token with 401", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/authorizedhub`, {
            options: { accessTokenFactory: () => "not.a.valid-token" },
        });
        const err = await rejectionOf(connection.start(), "start() with a bad token");
        assert.equal(err.message, "Failed to complete negotiation with the server: Error: Unauthorized: Status code '401'");
    });

    for (const transport of TRANSPORTS) {
        it(`accepts a /generateJwtToken token over ${transportName(transport)}`, TEST_TIMEOUT, async () => {
            const token = await jwtToken();
            const connection = scope.hub(`${server.url}/authorizedhub`, {
                transport,
                options: { accessTokenFactory: () => token },
            });
            await within(connection.start(), "start()");
            assert.equal(await within(connection.invoke("Echo", UNICODE), "Echo"), UNICODE);
            assert.equal(await within(connection.invoke("GetUserNameIdentifier"), "GetUserNameIdentifier"), "testuser");
            await stopCleanly(assert, connection);
        });

        it(`accepts an async token factory over ${transportName(transport)}`, TEST_TIMEOUT, async () => {
            const connection = scope.hub(`${server.url}/authorizedhub`, {
                transport,
                options: { accessTokenFactory: () => jwtToken() },
            });
            await within(connection.start(), "start()");
            assert.equal(await within(connection.invoke("Echo", "async"), "Echo"), "async");
            await stopCleanly(assert, connection);
        });
    }
});

describe("negotiate failures", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());

    it("reports the body of /bad-negotiate", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/bad-negotiate`);
        const err = await rejectionOf(connection.start(), "start() on /bad-negotiate");
        assert.equal(err.message,
            "Failed to complete negotiation with the server: Error: Some response from server: Status code '400'");
    });

    it("reports a 404 on an unknown endpoint", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/no-such-hub`);
        const err = await rejectionOf(connection.start(), "start() on an unknown endpoint");
        assert.equal(err.message,
            "Failed to complete negotiation with the server: Error: Not Found: Status code '404' " +
            "Either this is not a SignalR endpoint or there is a proxy blocking the connection.");
    });
});

describe("/redirect", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());

    for (const transport of TRANSPORTS) {
        it(`follows the negotiate redirect over ${transportName(transport)}`, TEST_TIMEOUT, async () => {
            const connection = scope.hub(`${server.url}/redirect?numRedirects=0&baseUrl=${server.url}`, { transport });
            await within(connection.start(), "start() through /redirect");
            const redirects = await within(connection.invoke("GetNumRedirects"), "GetNumRedirects");
            assert.ok(Number.isInteger(redirects) && redirects >= 1, `GetNumRedirects is a positive count, got ${redirects}`);
            assert.equal(await within(connection.invoke("GetCallerConnectionId"), "GetCallerConnectionId"),
                connection.connectionId);
            assert.equal(await within(connection.invoke("GetActiveTransportName"), "GetActiveTransportName"),
                transportName(transport));
            await stopCleanly(assert, connection);
        });
    }

    it("counts more redirects after an automatic reconnect, with a new matching connection id", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/redirect?numRedirects=0&baseUrl=${server.url}`, {
            configure: (builder) => builder.withAutomaticReconnect(),
        });
        const events = reconnectedOnce(connection);
        assert.equal(connection.connectionId, null);
        await within(connection.start(), "start() through /redirect");
        const before = await within(connection.invoke("GetNumRedirects"), "GetNumRedirects");
        const firstId = connection.connectionId;
        assert.equal(await within(connection.invoke("GetCallerConnectionId"), "GetCallerConnectionId"), firstId);

        // The client's own server-timeout path: it drops the transport and reconnects (a new negotiate).
        connection.serverTimeout();
        await within(events.reconnecting, "onreconnecting");
        const newId = await within(events.reconnected, "onreconnected");
        assert.notEqual(newId, firstId);
        assert.equal(await within(connection.invoke("GetCallerConnectionId"), "GetCallerConnectionId"), newId);
        const afterReconnect = await within(connection.invoke("GetNumRedirects"), "GetNumRedirects");
        assert.ok(afterReconnect > before, `redirect count grows across the reconnect (${before} -> ${afterReconnect})`);
        await stopCleanly(assert, connection);
        assert.equal(connection.connectionId, null);
    });
});

describe("automatic reconnect on /testhub", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());

    for (const transport of TRANSPORTS) {
        it(`reconnects over ${transportName(transport)} with a new connection id`, TEST_TIMEOUT, async () => {
            const connection = scope.hub(`${server.url}/testhub`, {
                transport,
                configure: (builder) => builder.withAutomaticReconnect(),
            });
            const events = reconnectedOnce(connection);
            await within(connection.start(), "start()");
            const firstId = connection.connectionId;
            connection.serverTimeout();
            await within(events.reconnecting, "onreconnecting");
            const newId = await within(events.reconnected, "onreconnected");
            assert.notEqual(newId, firstId);
            assert.equal(await within(connection.invoke("Echo", "test"), "Echo"), "test");
            await stopCleanly(assert, connection);
        });
    }
});

describe("skipNegotiation over WebSockets", () => {
    const scope = new ConnectionScope();
    afterEach(() => scope.dispose());

    it("connects without negotiate; connectionId stays null", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/testhub`, {
            transport: HttpTransportType.WebSockets,
            options: { skipNegotiation: true },
        });
        assert.equal(connection.connectionId, null);
        await within(connection.start(), "start()");
        assert.equal(connection.connectionId, null);
        assert.equal(await within(connection.invoke("Echo", UNICODE), "Echo"), UNICODE);
        const serverId = await within(connection.invoke("GetCallerConnectionId"), "GetCallerConnectionId");
        assert.match(serverId, /^[A-Za-z0-9_-]{22}$/, "the server still assigns a connection id");
        await stopCleanly(assert, connection);
        assert.equal(connection.connectionId, null);
    });

    it("connects without negotiate with MessagePack", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/testhub`, {
            transport: HttpTransportType.WebSockets,
            protocol: "messagepack",
            options: { skipNegotiation: true },
        });
        await within(connection.start(), "start()");
        assert.equal(await within(connection.invoke("Echo", UNICODE), "Echo"), UNICODE);
        await stopCleanly(assert, connection);
    });

    it("reconnects after skipping negotiation (onreconnected gets undefined)", TEST_TIMEOUT, async () => {
        const connection = scope.hub(`${server.url}/testhub`, {
            transport: HttpTransportType.WebSockets,
            options: { skipNegotiation: true },
            configure: (builder) => builder.withAutomaticReconnect(),
        });
        const events = reconnectedOnce(connection);
        await within(connection.start(), "start()");
        connection.serverTimeout();
        await within(events.reconnecting, "onreconnecting");
        assert.equal(await within(events.reconnected, "onreconnected"), undefined);
        assert.equal(await within(connection.invoke("Echo", "test"), "Echo"), "test");
        await stopCleanly(assert, connection);
    });
});
