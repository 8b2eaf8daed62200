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
    constructor(port, dir) {
        this.port = port;
        this.dir = dir;
        this.child = null;
        this.output = [];
    }

    static async create() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "signalr-redis-test-"));
        return new RedisServer(await freePort(), dir);
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
        const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", this.dir, "--daemonize", "no"];
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
                if (/Ready to accept connections/.test(line)) {
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

module.exports = { RedisServer, freePort, redisCli };
