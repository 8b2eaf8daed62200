"use strict";
// Helpers around the official client: building connections, waiting on events with a deadline,
// and making sure every connection a test opened is stopped afterwards.

const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

const { HttpTransportType, HubConnectionBuilder, JsonHubProtocol, LogLevel } = signalR;

/** Default bound for a single wait inside a test. */
const WAIT_MS = 15_000;

/** The transport/protocol combinations the official functional tests run (msgpack never on SSE). */
const COMBOS = [
    { transport: HttpTransportType.WebSockets, protocol: "json" },
    { transport: HttpTransportType.WebSockets, protocol: "messagepack" },
    { transport: HttpTransportType.ServerSentEvents, protocol: "json" },
    { transport: HttpTransportType.LongPolling, protocol: "json" },
    { transport: HttpTransportType.LongPolling, protocol: "messagepack" },
];

const TRANSPORTS = [HttpTransportType.WebSockets, HttpTransportType.ServerSentEvents, HttpTransportType.LongPolling];

/** The name the server must report for a transport (GetActiveTransportName). */
function transportName(transport) {
    return HttpTransportType[transport];
}

function makeProtocol(name) {
    return name === "messagepack" ? new MessagePackHubProtocol() : new JsonHubProtocol();
}

/** Client log lines go to stderr only when SIGNALR_CLIENT_LOG names a level (e.g. Debug). */
const logger = {
    level: LogLevel[process.env.SIGNALR_CLIENT_LOG || "None"] ?? LogLevel.None,
    log(level, message) {
        if (level >= this.level) {
            process.stderr.write(`[client ${LogLevel[level]}] ${message}\n`);
        }
    },
};

/**
 * Builds a hub connection. `options` are IHttpConnectionOptions; `transport` may be undefined to
 * let the client negotiate; `configure` can add builder calls (e.g. withStatefulReconnect).
 */
function buildHub(url, { transport, protocol = "json", options = {}, configure } = {}) {
    const httpOptions = { ...options, logger, logMessageContent: true };
    if (transport !== undefined) {
        httpOptions.transport = transport;
    }
    let builder = new HubConnectionBuilder()
        .configureLogging(logger)
        .withUrl(url, httpOptions)
        .withHubProtocol(makeProtocol(protocol));
    if (configure) {
        builder = configure(builder);
    }
    return builder.build();
}

/** A promise with its resolve/reject exposed. */
function deferred() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
    });
    return { promise, resolve, reject };
}

/** Resolves like `promise`, or rejects once `ms` have passed, naming what was awaited. */
function within(promise, what, ms = WAIT_MS) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves with the error the connection closes with (undefined for a clean close). */
function closed(connection) {
    const d = deferred();
    connection.onclose((error) => d.resolve(error));
    return d.promise;
}

/** Resolves with the rejection reason of `promise`; rejects if it fulfils. */
async function rejectionOf(promise, what) {
    let value;
    try {
        value = await within(promise, what);
    } catch (err) {
        return err;
    }
    throw new Error(`${what} succeeded with ${JSON.stringify(value)} but was expected to fail`);
}

/**
 * Collects connections opened in a test and stops any that are still running afterwards, so a
 * failing assertion never leaks a socket into the next test.
 */
class ConnectionScope {
    constructor() {
        this.connections = [];
    }

    track(connection) {
        this.connections.push(connection);
        return connection;
    }

    hub(url, settings) {
        return this.track(buildHub(url, settings));
    }

    async dispose() {
        await Promise.allSettled(this.connections.map((c) => c.stop()));
        this.connections = [];
    }
}

/** Starts a hub connection, stops it, and asserts the close carried no error. */
async function stopCleanly(assert, connection) {
    const closeError = closed(connection);
    await within(connection.stop(), "stop()");
    assert.equal(await within(closeError, "onclose"), undefined, "connection must close without an error");
}

/** Fetches a URL with Node's fetch and returns { status, text }. */
async function httpGet(url) {
    const response = await fetch(url);
    return { status: response.status, text: await response.text() };
}

module.exports = {
    COMBOS,
    TRANSPORTS,
    WAIT_MS,
    ConnectionScope,
    buildHub,
    closed,
    deferred,
    httpGet,
    logger,
    makeProtocol,
    rejectionOf,
    stopCleanly,
    transportName,
    within,
    signalR,
};
