"use strict";
// Connections to /hubs/notifications with the official @microsoft/signalr client, recording
// every tenant event they receive, with waits resolved by the handlers themselves.

const assert = require("node:assert/strict");
const signalR = require("@microsoft/signalr");
const { deferred, within, WAIT_MS } = require("./wait");

const { HubConnectionBuilder, HttpTransportType, LogLevel, HubConnectionState } = signalR;

/** The four tenant events. */
const TENANT_EVENTS = ["TenantCreated", "TenantCreationFailed", "TenantUpdated", "TenantUpdateFailed"];

/** The Connected greeting (§10.5). */
const CONNECTED_MESSAGE = "Successfully connected to notification hub";

const logger = {
    level: LogLevel[process.env.SIGNALR_CLIENT_LOG || "None"] ?? LogLevel.None,
    log(level, message) {
        if (level >= this.level) process.stderr.write(`[client ${LogLevel[level]}] ${message}\n`);
    },
};

/** One recorded hub connection. */
class HubRecorder {
    constructor(name) {
        this.name = name;
        this.events = [];
        this.waiters = [];
        this.connected = deferred();
        this.closed = null;
    }

    record(target, data) {
        const entry = { target, data, at: Date.now() };
        this.events.push(entry);
        for (const w of this.waiters.slice()) {
            if (w.predicate(entry)) {
                this.waiters.splice(this.waiters.indexOf(w), 1);
                w.resolve(entry);
            }
        }
    }

    /** Resolves with the first recorded event (past or future) matching `predicate`. */
    waitFor(predicate, what, ms = WAIT_MS) {
        const found = this.events.find(predicate);
        if (found) return Promise.resolve(found);
        const d = deferred();
        const waiter = { predicate, resolve: d.resolve };
        this.waiters.push(waiter);
        return within(d.promise, `${this.name} to receive ${what}`, ms).finally(() => {
            const i = this.waiters.indexOf(waiter);
            if (i >= 0) this.waiters.splice(i, 1);
        });
    }

    /** Waits for event `target` about `tenantId`. */
    waitForEvent(target, tenantId, ms = WAIT_MS) {
        return this.waitFor((e) => e.target === target && e.data && e.data.tenantId === tenantId, `${target} for tenant ${tenantId}`, ms);
    }

    /** Every recorded event `target` about `tenantId`. */
    eventsFor(target, tenantId) {
        return this.events.filter((e) => e.target === target && e.data && e.data.tenantId === tenantId);
    }

    /** Asserts that exactly one `target` event about `tenantId` arrived; returns its payload. */
    assertExactlyOnce(target, tenantId) {
        const got = this.eventsFor(target, tenantId);
        assert.equal(got.length, 1, `${this.name}: expected exactly one ${target} for ${tenantId}, got ${got.length}: ${JSON.stringify(got.map((e) => e.data))}`);
        return got[0].data;
    }

    /** Asserts that no event id arrived twice on this connection. */
    assertNoRepeats() {
        const ids = this.events.map((e) => e.data && e.data.id);
        const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
        assert.deepEqual(dup, [], `${this.name}: event ids received more than once: ${dup.join(", ")}`);
    }

    /** Asserts that the connection never closed. */
    assertStillConnected() {
        assert.equal(this.closed, null, `${this.name} closed: ${this.closed}`);
        assert.equal(this.connection.state, HubConnectionState.Connected, `${this.name} state`);
    }
}

/**
 * Connects to `baseUrl`'s hub with `token` (sent as the official client sends it: Bearer on
 * negotiate, access_token on the WebSocket) and waits for the `Connected` greeting.
 */
async function connectHub(baseUrl, token, name, { transport = HttpTransportType.WebSockets } = {}) {
    const rec = new HubRecorder(name);
    const connection = new HubConnectionBuilder()
        .withUrl(`${baseUrl}/hubs/notifications`, { accessTokenFactory: () => token, transport, logger })
        .configureLogging(logger)
        .build();
    rec.connection = connection;
    for (const target of TENANT_EVENTS) {
        connection.on(target, (data) => rec.record(target, data));
    }
    connection.on("Connected", (message) => rec.connected.resolve(message));
    connection.onclose((error) => {
        rec.closed = error ? String(error) : "closed";
    });
    await within(connection.start(), `${name} to connect to ${baseUrl}`);
    const greeting = await within(rec.connected.promise, `${name} to be greeted with Connected`);
    assert.equal(greeting, CONNECTED_MESSAGE);
    return rec;
}

/** Stops every connection, ignoring errors. */
async function stopAll(recorders) {
    await Promise.allSettled(recorders.filter(Boolean).map((r) => r.connection.stop()));
}

/** POSTs negotiate (v1) with optional bearer token or access_token query; resolves with the status. */
async function negotiateStatus(baseUrl, { bearer, accessTokenQuery } = {}) {
    const headers = {};
    if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
    let url = `${baseUrl}/hubs/notifications/negotiate?negotiateVersion=1`;
    if (accessTokenQuery !== undefined) url += `&access_token=${encodeURIComponent(accessTokenQuery)}`;
    const r = await fetch(url, { method: "POST", headers });
    await r.text();
    return r.status;
}

/**
 * Sends a WebSocket upgrade request straight to the hub (what skipNegotiation does), with the
 * token in `access_token` when given; resolves with 101 when upgraded, else the HTTP status.
 */
function websocketUpgradeStatus(baseUrl, token) {
    const http = require("node:http");
    let url = `${baseUrl}/hubs/notifications`;
    if (token !== undefined) url += `?access_token=${encodeURIComponent(token)}`;
    return within(
        new Promise((resolve, reject) => {
            const req = http.get(url, {
                headers: {
                    Connection: "Upgrade",
                    Upgrade: "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": require("node:crypto").randomBytes(16).toString("base64"),
                },
            });
            req.on("upgrade", (res, socket) => {
                socket.destroy();
                resolve(res.statusCode);
            });
            req.on("response", (res) => {
                res.resume();
                resolve(res.statusCode);
            });
            req.on("error", reject);
        }),
        `the WebSocket upgrade at ${url} to be answered`,
    );
}

/**
 * Tries to connect with the official client and `token` (undefined: none); resolves with the
 * error start() rejected with, or fails if it connected.
 */
async function expectRefused(baseUrl, token, what, { skipNegotiation = false } = {}) {
    const options = { logger, transport: HttpTransportType.WebSockets, skipNegotiation };
    if (token !== undefined) options.accessTokenFactory = () => token;
    const connection = new HubConnectionBuilder().withUrl(`${baseUrl}/hubs/notifications`, options).configureLogging(logger).build();
    let greeted = false;
    connection.on("Connected", () => {
        greeted = true;
    });
    let error;
    try {
        await within(connection.start(), `the official client's start() (${what}) to settle`);
    } catch (e) {
        error = e;
    }
    if (!error) {
        await connection.stop();
        assert.fail(`${what}: the hub accepted the connection (greeted: ${greeted})`);
    }
    assert.notEqual(connection.state, HubConnectionState.Connected, what);
    return error;
}

module.exports = { connectHub, stopAll, negotiateStatus, websocketUpgradeStatus, expectRefused, HubRecorder, TENANT_EVENTS, CONNECTED_MESSAGE, HttpTransportType };
