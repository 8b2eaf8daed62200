"use strict";
// A redis-server owned by the test, on a free port in a temp dir, that can be SIGKILLed and
// started again on the same port. Never the machine's shared Redis on 6379.

const { spawn } = require("node:child_process");
const net = require("node:net");
const { deferred, within } = require("./wait");

/** A free TCP port on 127.0.0.1 (bound once and released). */
function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

// Servers still running when the test process exits are killed with it.
const LIVE_REDIS = new Set();
process.on("exit", () => {
    for (const child of LIVE_REDIS) {
        try {
            child.kill("SIGKILL");
        } catch {
            // already gone
        }
    }
});

class RedisServer {
    /** `dir` is the server's working directory (it persists nothing: no RDB, no AOF). */
    constructor(port, dir) {
        this.port = port;
        this.dir = dir;
        this.child = null;
        this.log = "";
    }

    /** The connection string Diquis is given (StackExchange.Redis format). */
    get connectionString() {
        return `127.0.0.1:${this.port},abortConnect=false`;
    }

    /** Starts the server and resolves once it accepts connections. */
    async start() {
        if (this.child) throw new Error("redis-server already running");
        const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir];
        const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
        this.child = child;
        LIVE_REDIS.add(child);
        const ready = deferred();
        const exit = deferred();
        this.exited = exit.promise;
        let output = "";
        const onData = (d) => {
            output += d.toString();
            this.log += d.toString();
            if (output.includes("Ready to accept connections")) ready.resolve();
        };
        child.stdout.on("data", onData);
        child.stderr.on("data", onData);
        child.on("error", (e) => ready.reject(new Error(`cannot run redis-server: ${e.message}`)));
        child.on("exit", (code, signal) => {
            LIVE_REDIS.delete(child);
            ready.reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${this.log}`));
            if (this.child === child) this.child = null;
            exit.resolve();
        });
        await within(ready.promise, `redis-server to accept connections on port ${this.port}`);
        await this.ping();
    }

    /** Resolves when the server answers PING with PONG. */
    ping() {
        return within(
            new Promise((resolve, reject) => {
                const socket = net.connect(this.port, "127.0.0.1");
                let data = "";
                socket.on("connect", () => socket.write("PING\r\n"));
                socket.on("data", (d) => {
                    data += d.toString();
                    if (data.includes("+PONG")) {
                        socket.destroy();
                        resolve();
                    }
                });
                socket.on("error", reject);
            }),
            `PONG from redis-server on port ${this.port}`,
            5_000,
        );
    }

    /** Sends one command (RESP array of bulk strings); resolves with the reply. */
    command(...args) {
        const payload = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join("");
        return within(
            new Promise((resolve, reject) => {
                const socket = net.connect(this.port, "127.0.0.1");
                let buffer = Buffer.alloc(0);
                socket.on("connect", () => socket.write(payload));
                socket.on("data", (d) => {
                    buffer = Buffer.concat([buffer, d]);
                    const reply = parseReply(buffer);
                    if (reply !== undefined) {
                        socket.destroy();
                        if (reply instanceof Error) reject(reply);
                        else resolve(reply);
                    }
                });
                socket.on("error", reject);
            }),
            `redis-server to answer ${args[0]}`,
            5_000,
        );
    }

    /** CLIENT LIST as objects (fields as strings). */
    async clients() {
        const text = await this.command("CLIENT", "LIST");
        return text
            .split("\n")
            .filter((l) => l.trim().length > 0)
            .map((l) => Object.fromEntries(l.trim().split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])));
    }

    /** SIGKILLs the server (no shutdown, like a crash) and resolves once it has exited. */
    async kill() {
        if (!this.child) return;
        const exited = this.exited;
        this.child.kill("SIGKILL");
        await within(exited, "redis-server to exit after SIGKILL", 10_000);
    }
}

/** Parses one simple RESP reply (+, -, :, $); undefined while incomplete. */
function parseReply(buffer) {
    const end = buffer.indexOf("\r\n");
    if (end < 0) return undefined;
    const kind = String.fromCharCode(buffer[0]);
    const line = buffer.subarray(1, end).toString();
    switch (kind) {
        case "+":
            return line;
        case "-":
            return new Error(`redis: ${line}`);
        case ":":
            return Number(line);
        case "$": {
            const length = Number(line);
            if (length < 0) return null;
            if (buffer.length < end + 2 + length + 2) return undefined;
            return buffer.subarray(end + 2, end + 2 + length).toString();
        }
        default:
            return new Error(`redis: unexpected reply type ${kind}`);
    }
}

module.exports = { RedisServer, freePort };
