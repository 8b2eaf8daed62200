"use strict";
// Helpers for the multi-node Redis backplane suite: testserver nodes on one private Redis,
// official-client connections that record what they receive, fences, and the publisher-only
// example process of crates/signalr-redis.

const { execFile } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const { startTestServer, serverBinary } = require("./server");
const { deferred, within, buildHub, signalR } = require("./client");

/** The hub's wire name towards the backplane (crates/signalr-testserver/src/test_hub.rs). */
const TEST_HUB_WIRE_NAME = "SignalRTestServer.TestHub";

/** Bound for waits that span a Redis restart and the nodes' reconnect backoff (at most 5 s). */
const RECOVERY_MS = 30_000;

/** A channel prefix no other test uses (so parallel runs on one Redis never meet). */
function uniquePrefix(label) {
    return `bp-${label}-${crypto.randomBytes(4).toString("hex")}-`;
}

/**
 * Starts a testserver node on `redis` (a RedisServer, a RedisCluster or a connection string) with
 * `prefix`; `sharded`: sharded Pub/Sub on a cluster (`--redis-sharded`).
 */
function startNode(redis, prefix, { sharded = false } = {}) {
    const connectionString = typeof redis === "string" ? redis : redis.connectionString;
    return startTestServer(["--redis", connectionString, "--channel-prefix", prefix, ...(sharded ? ["--redis-sharded"] : [])]);
}

/** Path of the publisher-only example binary (`cargo build --release -p signalr-redis --example publish`). */
function publishBinary() {
    return process.env.SIGNALR_REDIS_PUBLISH || path.join(path.dirname(serverBinary()), "examples", "publish");
}

/** Runs the publisher-only process; resolves with its stdout, rejects with its stderr. */
function runPublish(args) {
    const binary = publishBinary();
    if (!fs.existsSync(binary)) {
        return Promise.reject(new Error(`publish example not found at ${binary}; build it with ` +
            "`cargo build --release -p signalr-redis --example publish` or set SIGNALR_REDIS_PUBLISH"));
    }
    return new Promise((resolve, reject) => {
        execFile(binary, args, { timeout: 30_000 }, (error, stdout, stderr) => {
            if (error) {
                reject(new Error(`publish ${args.join(" ")} failed: ${error.message}\n${stderr}`));
            } else {
                resolve(stdout);
            }
        });
    });
}

/**
 * A started official-client connection to `/testhub` of one node that records every `Message`
 * it receives and whether it ever closed.
 */
class Peer {
    constructor(name, connection) {
        this.name = name;
        this.connection = connection;
        this.messages = [];
        this.waiters = [];
        this.closedWith = null; // set (to the error or "clean") if onclose ever fires
        this.id = null;
        connection.on("Message", (msg) => {
            this.messages.push(msg);
            const ready = this.waiters.filter((w) => w.matches(msg));
            this.waiters = this.waiters.filter((w) => !w.matches(msg));
            for (const waiter of ready) {
                waiter.resolve(msg);
            }
        });
        connection.onclose((error) => {
            this.closedWith = error || "clean";
        });
    }

    /** Resolves with the first message matching `predicate` (at once if one already came). */
    receivedMatching(predicate, what, ms) {
        const found = this.messages.find(predicate);
        if (found !== undefined) {
            return Promise.resolve(found);
        }
        const d = deferred();
        this.waiters.push({ matches: predicate, resolve: d.resolve });
        return within(d.promise, `${this.name} to receive ${what}`, ms);
    }

    /** Resolves once `msg` has been received. */
    received(msg, ms) {
        return this.receivedMatching((m) => m === msg, JSON.stringify(msg), ms);
    }

    /** How many times `msg` was received. */
    count(msg) {
        return this.messages.filter((m) => m === msg).length;
    }

    invoke(method, ...args) {
        return within(this.connection.invoke(method, ...args), `${this.name}.invoke(${method})`);
    }
}

/**
 * Opens a connection to `node` (WebSockets; `protocol` json or messagepack; `token` makes it the
 * JWT user `testuser`), starts it and learns its connection id.
 */
async function connectPeer(scope, node, name, { protocol = "json", token } = {}) {
    const options = token ? { accessTokenFactory: () => token } : {};
    const connection = scope.track(buildHub(`${node.url}/testhub`, {
        transport: signalR.HttpTransportType.WebSockets,
        protocol,
        options,
    }));
    const peer = new Peer(name, connection);
    await within(connection.start(), `${name} to start`);
    peer.id = await peer.invoke("GetCallerConnectionId");
    return peer;
}

/** A JWT for `testuser` from a node. */
async function fetchToken(node) {
    const response = await fetch(`${node.url}/generateJwtToken`);
    if (response.status !== 200) {
        throw new Error(`/generateJwtToken answered ${response.status}`);
    }
    return response.text();
}

let fenceCounter = 0;

/**
 * Sends a unique broadcast from `sender` and waits until every peer has it. Messages from one
 * node reach each peer in order, so afterwards every peer has had whatever `sender`'s node sent
 * it before: "nobody else got it" is then checked without waiting for time to pass.
 */
async function fence(sender, peers) {
    fenceCounter += 1;
    const msg = `fence-${process.pid}-${fenceCounter}`;
    await sender.invoke("SendToAll", msg);
    await Promise.all(peers.map((p) => p.received(msg)));
    return msg;
}

/**
 * Broadcasts from `sender` again and again (a new message every `everyMs`) until every peer has
 * received one of them, or `ms` passes: the way to learn that the cross-node path works
 * (after start-up, or after Redis came back) without assuming how long it takes.
 */
async function untilBroadcastsFlow(sender, peers, label, ms = RECOVERY_MS, everyMs = 200) {
    fenceCounter += 1;
    const tag = `${label}-${process.pid}-${fenceCounter}-`;
    const arrived = Promise.all(peers.map((p) => p.receivedMatching((m) => m.startsWith(tag), `a ${tag}* broadcast`, ms)));
    let done = false;
    arrived.then(() => { done = true; }, () => { done = true; });
    const sending = (async () => {
        for (let n = 0; !done; n++) {
            await sender.invoke("SendToAll", `${tag}${n}`);
            await new Promise((resolve) => setTimeout(resolve, everyMs));
        }
    })();
    try {
        await arrived;
    } finally {
        done = true;
        await sending;
    }
}

/**
 * `peer` broadcasts `traffic-<name>-<n>` continuously until `stop()`; `sent` lists what the
 * server accepted. `stop()` resolves once the loop ended and rethrows a send that failed.
 */
function startTraffic(peer, everyMs = 25) {
    const sent = [];
    let on = true;
    const loop = (async () => {
        for (let n = 0; on; n++) {
            const msg = `traffic-${peer.name}-${n}`;
            await peer.invoke("SendToAll", msg);
            sent.push(msg);
            await new Promise((resolve) => setTimeout(resolve, everyMs));
        }
    })();
    loop.catch(() => {}); // observed by stop()
    return { sent, stop: async () => { on = false; await loop; } };
}

module.exports = {
    Peer,
    RECOVERY_MS,
    TEST_HUB_WIRE_NAME,
    connectPeer,
    fence,
    fetchToken,
    publishBinary,
    runPublish,
    startNode,
    startTraffic,
    uniquePrefix,
    untilBroadcastsFlow,
};
