"use strict";
// A private redis-server for backplane tests: started on a free port in a temporary directory,
// with no persistence, so that a test can kill it (SIGKILL) and start it again on the same port.
// Never the machine's shared Redis on 6379.
//
// Readiness is waited for on events (the "Ready to accept connections" line, then a PING answered
// by redis-cli), bounded by deadlines, never for a fixed time.

const { spawn, execFile } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");

const START_DEADLINE_MS = 15_000;
const REDIS_SERVER = process.env.REDIS_SERVER || "redis-server";
const REDIS_CLI = process.env.REDIS_CLI || "redis-cli";

/** A TCP port that was free a moment ago (bound to port 0, then released). Never 6379. */
function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.unref();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            server.close(() => (port === 6379 ? freePort().then(resolve, reject) : resolve(port)));
        });
    });
}

/** Runs redis-cli against `port`; resolves with its stdout (rejects on a non-zero exit). */
function redisCli(port, args, { input } = {}) {
    return new Promise((resolve, reject) => {
        const child = execFile(REDIS_CLI, ["-h", "127.0.0.1", "-p", String(port), ...args],
            { encoding: "buffer", timeout: 10_000 }, (error, stdout, stderr) => {
                if (error) {
                    reject(new Error(`redis-cli ${args.join(" ")} failed: ${error.message} ${stderr}`));
                } else {
                    resolve(stdout.toString("utf8"));
                }
            });
        if (input !== undefined) {
            child.stdin.end(input);
        }
    });
}

/**
 * A redis-server on a fixed port: `start()`, `kill()` (SIGKILL), `start()` again, `stop()`.
 * Create with `await RedisServer.create()` (picks the port and the temporary directory).
 */
class RedisServer {
    constructor(port, dir, { args = [], sentinelConfig = null } = {}) {
        this.port = port;
        this.dir = dir;
        this.args = args;
        this.sentinelConfig = sentinelConfig;
        this.child = null;
        this.output = [];
    }

    /**
     * `args`: more redis-server arguments (e.g. `["--replicaof", "127.0.0.1", port]`).
     * `sentinelConfig`: lines of a sentinel.conf; the server then runs as a sentinel.
     */
    static async create(options = {}) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "signalr-redis-test-"));
        return new RedisServer(await freePort(), dir, options);
    }

    /** The StackExchange.Redis connection string of this server. */
    get connectionString() {
        return `127.0.0.1:${this.port}`;
    }

    /** Starts redis-server and resolves once it answers PING. */
    async start() {
        if (this.child) {
            throw new Error(`redis-server on ${this.port} is already running`);
        }
        let args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", this.dir, "--daemonize", "no", ...this.args];
        let readyLine = /Ready to accept connections/;
        if (this.sentinelConfig) {
            // A sentinel rewrites its configuration file: it must be its own, writable.
            const file = path.join(this.dir, "sentinel.conf");
            if (!fs.existsSync(file)) {
                fs.writeFileSync(file, `${this.sentinelConfig.join("\n")}\n`);
            }
            args = [file, "--sentinel", "--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, ...this.args];
            readyLine = /\+monitor master/;
        }
        const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
        this.child = child;
        const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
        this.exited = exited;
        const ready = new Promise((resolve, reject) => {
            const onLine = (line) => {
                this.output.push(line);
                if (this.output.length > 100) {
                    this.output.shift();
                }
                if (readyLine.test(line)) {
                    resolve();
                }
            };
            readline.createInterface({ input: child.stdout }).on("line", onLine);
            readline.createInterface({ input: child.stderr }).on("line", onLine);
            child.once("error", (err) => reject(new Error(`could not start ${REDIS_SERVER}: ${err.message}`)));
            exited.then(({ code, signal }) => reject(new Error(
                `redis-server on ${this.port} exited early (code ${code}, signal ${signal})\n${this.output.join("\n")}`)));
        });
        let timer;
        const deadline = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(
                `redis-server on ${this.port} not ready within ${START_DEADLINE_MS} ms\n${this.output.join("\n")}`)),
            START_DEADLINE_MS);
        });
        try {
            await Promise.race([ready, deadline]);
            const pong = await redisCli(this.port, ["PING"]);
            if (pong.trim() !== "PONG") {
                throw new Error(`redis-server on ${this.port} answered PING with ${JSON.stringify(pong)}`);
            }
        } catch (err) {
            await this.kill();
            throw err;
        } finally {
            clearTimeout(timer);
        }
    }

    /** SIGKILL, like a crash: no goodbye to the clients. Resolves once the process is gone. */
    async kill() {
        const child = this.child;
        if (!child) {
            return;
        }
        this.child = null;
        if (child.exitCode === null && child.signalCode === null) {
            child.kill("SIGKILL");
        }
        await this.exited;
    }

    /** Stops the server and removes its directory. */
    async stop() {
        await this.kill();
        fs.rmSync(this.dir, { recursive: true, force: true });
    }

    /** `redis-cli` against this server. */
    cli(args, options) {
        return redisCli(this.port, args, options);
    }

    /** PUBLISH raw bytes (binary-safe: the payload goes through stdin with `-x`). */
    async publishRaw(channel, payload) {
        const out = await this.cli(["-x", "PUBLISH", channel], { input: Buffer.from(payload) });
        return Number.parseInt(out.trim(), 10);
    }

    /** Number of subscribers of each channel (PUBSUB NUMSUB). */
    async numsub(channel) {
        const out = (await this.cli(["PUBSUB", "NUMSUB", channel])).trim().split("\n");
        return Number.parseInt(out[1], 10);
    }
}

/** Polls `check` (async, truthy when done) every 100 ms until it holds; rejects after `ms`. */
async function until(check, what, ms = 30_000) {
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
        try {
            if (await check()) {
                return;
            }
        } catch (err) {
            last = err;
        }
        if (Date.now() > deadline) {
            throw new Error(`not within ${ms} ms: ${what}${last ? ` (last error: ${last.message})` : ""}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

/**
 * A Sentinel group on free ports: one primary, one replica, three sentinels (quorum 2, a primary
 * is declared down after 1 s). `connectionString` is what a .NET node would write:
 * the sentinels' endpoints and `serviceName`.
 */
class RedisSentinelGroup {
    constructor(primary, replica, sentinels, service) {
        this.primary = primary;
        this.replica = replica;
        this.sentinels = sentinels;
        this.service = service;
    }

    static async start(service = "mymaster") {
        const primary = await RedisServer.create();
        await primary.start();
        const replica = await RedisServer.create({ args: ["--replicaof", "127.0.0.1", String(primary.port)] });
        await replica.start();
        await until(async () => /master_link_status:up/.test(await replica.cli(["INFO", "replication"])),
            "the replica is in sync with the primary");
        const sentinels = [];
        for (let i = 0; i < 3; i++) {
            const sentinel = await RedisServer.create({ sentinelConfig: [
                `sentinel monitor ${service} 127.0.0.1 ${primary.port} 2`,
                `sentinel down-after-milliseconds ${service} 1000`,
                `sentinel failover-timeout ${service} 5000`,
                `sentinel parallel-syncs ${service} 1`,
            ] });
            await sentinel.start();
            sentinels.push(sentinel);
        }
        const group = new RedisSentinelGroup(primary, replica, sentinels, service);
        // Failover needs every sentinel to know the replica and the other sentinels (learnt
        // through their hello messages on the primary).
        for (const sentinel of sentinels) {
            await until(async () => {
                const info = await sentinel.cli(["SENTINEL", "MASTER", service]);
                const lines = info.trim().split("\n");
                const field = (name) => lines[lines.indexOf(name) + 1];
                return field("num-slaves") === "1" && field("num-other-sentinels") === "2";
            }, `sentinel ${sentinel.port} knows the replica and the other sentinels`);
        }
        return group;
    }

    get connectionString() {
        return `${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")},serviceName=${this.service}`;
    }

    /** The primary's port as the given sentinel reports it. */
    async primaryPort(sentinel = this.sentinels[0]) {
        const out = (await sentinel.cli(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", this.service])).trim().split("\n");
        return Number.parseInt(out[1], 10);
    }

    async stop() {
        await Promise.allSettled([...this.sentinels, this.replica, this.primary].map((s) => s.stop()));
    }
}

/**
 * A Redis Cluster on free ports: `primaries` shards, each with `replicasPerPrimary` replicas
 * (`redis-cli --cluster create`), a node declared failed after 1 s (`cluster-node-timeout`).
 * `connectionString` lists every node, as a .NET application would write it.
 */
class RedisCluster {
    constructor(nodes) {
        this.nodes = nodes;
    }

    static async start({ primaries = 3, replicasPerPrimary = 1 } = {}) {
        const nodes = [];
        const count = primaries * (1 + replicasPerPrimary);
        try {
            for (let i = 0; i < count; i++) {
                const node = await RedisServer.create({ args: [
                    "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                    // A replica takes over however long it was out of touch with its primary.
                    "--cluster-replica-validity-factor", "0",
                ] });
                node.args.push("--cluster-config-file", path.join(node.dir, `nodes-${node.port}.conf`));
                await node.start();
                nodes.push(node);
            }
            await redisCli(nodes[0].port, ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`),
                "--cluster-replicas", String(replicasPerPrimary), "--cluster-yes"]);
            const cluster = new RedisCluster(nodes);
            await until(async () => {
                for (const node of cluster.running()) {
                    const info = await node.cli(["CLUSTER", "INFO"]);
                    if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) {
                        return false;
                    }
                }
                const slots = await cluster.slots();
                return new Set(slots.map((r) => r.primaryPort)).size === primaries
                    && slots.every((r) => r.replicaPorts.length === replicasPerPrimary);
            }, "the cluster serves every slot, every primary with its replicas");
            return cluster;
        } catch (err) {
            await Promise.allSettled(nodes.map((n) => n.stop()));
            throw err;
        }
    }

    get connectionString() {
        return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(",");
    }

    /** The nodes whose process is running. */
    running() {
        return this.nodes.filter((n) => n.child);
    }

    /** `CLUSTER SLOTS` as [{ start, end, primaryPort, replicaPorts }], from a running node. */
    async slots() {
        const out = (await this.running()[0].cli(["--json", "CLUSTER", "SLOTS"])).trim();
        return JSON.parse(out).map((range) => ({
            start: range[0], end: range[1], primaryPort: range[2][1], replicaPorts: range.slice(3).map((r) => r[1]),
        }));
    }

    /** The running primaries (RedisServer), as the cluster reports them. */
    async primaries() {
        const ports = new Set((await this.slots()).map((r) => r.primaryPort));
        return this.nodes.filter((n) => ports.has(n.port));
    }

    /** The node (RedisServer) that is primary for `key`'s slot. */
    async primaryFor(key) {
        const slot = Number.parseInt((await this.running()[0].cli(["CLUSTER", "KEYSLOT", key])).trim(), 10);
        const range = (await this.slots()).find((r) => r.start <= slot && slot <= r.end);
        return this.nodes.find((n) => n.port === range.primaryPort);
    }

    /** The hash slot of `key` (`CLUSTER KEYSLOT`). */
    async keySlot(key) {
        return Number.parseInt((await this.running()[0].cli(["CLUSTER", "KEYSLOT", key])).trim(), 10);
    }

    /**
     * Moves `slot` from the primary `source` to the primary `target` while the cluster runs, the
     * way `redis-cli --cluster reshard` does: `CLUSTER SETSLOT … IMPORTING` on the target and
     * `MIGRATING` on the source, the slot's keys `MIGRATE`d (Pub/Sub channels have none), then
     * `CLUSTER SETSLOT … NODE` on the target, the source and every other primary.
     */
    async migrateSlot(slot, source, target) {
        const ok = async (node, args) => {
            const out = (await node.cli(args)).trim();
            if (out !== "OK" && out !== "NOKEY") {
                throw new Error(`${args.join(" ")} on ${node.port}: ${out}`);
            }
        };
        const id = async (node) => (await node.cli(["CLUSTER", "MYID"])).trim();
        const [sourceId, targetId] = [await id(source), await id(target)];
        const others = (await this.primaries()).filter((p) => p !== source && p !== target);
        await ok(target, ["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceId]);
        await ok(source, ["CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetId]);
        for (;;) {
            const keys = (await source.cli(["CLUSTER", "GETKEYSINSLOT", String(slot), "100"])).split("\n").filter((k) => k.trim());
            if (keys.length === 0) {
                break;
            }
            await ok(source, ["MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS", ...keys.map((k) => k.trim())]);
        }
        for (const node of [target, source, ...others]) {
            await ok(node, ["CLUSTER", "SETSLOT", String(slot), "NODE", targetId]);
        }
    }

    async stop() {
        await Promise.allSettled(this.nodes.map((n) => n.stop()));
    }
}

module.exports = { RedisCluster, RedisSentinelGroup, RedisServer, freePort, redisCli, until };
