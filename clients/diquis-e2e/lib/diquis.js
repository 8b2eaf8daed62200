"use strict";
// Runs the `diquis` binary as real processes (`diquis web`, `diquis jobs`, `diquis`) configured
// the way operators configure it: environment variables with `__` as the separator.
//
// The binary comes from $DIQUIS_BIN, else <repo>/target/release/diquis. A process is "listening"
// once it printed `Now listening on: http://…` and "ready" once GET /health/ready answers 200
// (database, Redis backplane and job storage healthy). Both are awaited with a deadline.

const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");

const pg = require("./postgres");
const { RedisServer, freePort } = require("./redis");
const { deferred, within, until } = require("./wait");
const api = require("./api");

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
const LISTENING = /Now listening on:\s*(http:\/\/\S+)/;
const START_DEADLINE_MS = 60_000;
const STOP_DEADLINE_MS = 15_000;

/** The root administrator every suite signs in as. */
const ROOT_EMAIL = "admin@e2e.test";
const ROOT_PASSWORD = "E2e-Root-Passw0rd!";
/** The hub user identifier of that administrator (tenant-qualified user name). */
const ROOT_USER_NAME = `${ROOT_EMAIL}.root`;

/** Path of the binary under test. */
function diquisBinary() {
    return process.env.DIQUIS_BIN || path.join(REPO_ROOT, "target", "release", "diquis");
}

// Configuration that must come from the test only, never from the surrounding shell.
const FOREIGN_CONFIG = /^(ConnectionStrings__|Seed__|Jwt__|SignalR__|Notifications__|Cors__|Jobs__|Logging__|Diquis__|ASPNETCORE_|DOTNET_|Urls$)/i;

// Children still running when the test process exits (a cancelled test, a crash) are killed,
// so no diquis process outlives its suite.
const LIVE_CHILDREN = new Set();
process.on("exit", () => {
    for (const child of LIVE_CHILDREN) {
        try {
            child.kill("SIGKILL");
        } catch {
            // already gone
        }
    }
});

/** One `diquis` process. */
class DiquisProcess {
    /**
     * `role`: "web", "jobs" or "" (both in one process); `env`: configuration variables;
     * `logFile`: where its output goes.
     */
    constructor({ name, role, env, workDir, logFile }) {
        this.name = name;
        this.role = role;
        this.env = env;
        this.workDir = workDir;
        this.logFile = logFile;
        this.child = null;
        this.url = null;
        this.lines = [];
    }

    /** Starts the process; resolves with its URL once it prints `Now listening on:`. */
    async start() {
        const binary = diquisBinary();
        if (!fs.existsSync(binary)) {
            throw new Error(`diquis binary not found at ${binary}; build it with \`cargo build --release -p diquis\` or set DIQUIS_BIN`);
        }
        const env = {};
        for (const [k, v] of Object.entries(process.env)) {
            if (!FOREIGN_CONFIG.test(k)) env[k] = v;
        }
        Object.assign(env, this.env, { NO_COLOR: "1" });
        const args = this.role ? [this.role] : [];
        const child = spawn(binary, args, { cwd: this.workDir, env, stdio: ["ignore", "pipe", "pipe"] });
        this.child = child;
        LIVE_CHILDREN.add(child);
        const log = fs.createWriteStream(this.logFile, { flags: "a" });
        log.write(`\n===== ${new Date().toISOString()} start ${this.name}: ${binary} ${args.join(" ")} =====\n`);
        const listening = deferred();
        const exit = deferred();
        this.exited = exit.promise;
        const onLine = (line) => {
            this.lines.push(line);
            if (this.lines.length > 400) this.lines.shift();
            if (!log.writableEnded) log.write(line + "\n");
            const m = LISTENING.exec(line);
            if (m && !this.url) {
                this.url = m[1].replace(/\/$/, "");
                listening.resolve(this.url);
            }
        };
        readline.createInterface({ input: child.stdout }).on("line", onLine);
        readline.createInterface({ input: child.stderr }).on("line", onLine);
        child.on("error", (e) => listening.reject(new Error(`cannot run ${binary}: ${e.message}`)));
        // The log ends on "close", once the child's output pipes are drained too: on "exit" the
        // last lines may still be on their way, and writing them to an ended stream throws.
        child.on("close", (code, signal) => {
            log.write(`===== ${this.name} exited: ${code ?? signal} =====\n`);
            log.end();
        });
        child.on("exit", (code, signal) => {
            LIVE_CHILDREN.delete(child);
            this.exitStatus = code ?? signal;
            listening.reject(new Error(`${this.name} exited (${code ?? signal}) before listening:\n${this.tail()}`));
            if (this.child === child) this.child = null;
            exit.resolve(code ?? signal);
        });
        this.url = null;
        return within(listening.promise, `${this.name} to print "Now listening on:"`, START_DEADLINE_MS);
    }

    /** Resolves once GET /health/ready answers 200 (every dependency healthy). */
    async waitReady(ms = START_DEADLINE_MS) {
        let last = "";
        await until(
            async () => {
                if (!this.child) throw new Error(`${this.name} is not running`);
                const r = await fetch(`${this.url}/health/ready`);
                last = `${r.status} ${await r.text()}`;
                return r.status === 200;
            },
            `${this.name} at ${this.url} to report /health/ready 200 (last answer: ${last})`,
            { ms, every: 100 },
        );
    }

    /** Sends `signal` and resolves once the process has exited. */
    async kill(signal = "SIGKILL") {
        if (!this.child) return;
        const exited = this.exited;
        this.child.kill(signal);
        await within(exited, `${this.name} to exit after ${signal}`, STOP_DEADLINE_MS);
    }

    /** Graceful stop (SIGTERM), SIGKILL if it does not exit in time. */
    async stop() {
        if (!this.child) return;
        const exited = this.exited;
        this.child.kill("SIGTERM");
        try {
            await within(exited, `${this.name} to exit after SIGTERM`, STOP_DEADLINE_MS);
        } catch {
            if (this.child) this.child.kill("SIGKILL");
            await within(exited, `${this.name} to exit after SIGKILL`, STOP_DEADLINE_MS);
        }
    }

    get running() {
        return this.child !== null;
    }

    /** The last lines of output, for failure messages. */
    tail(n = 40) {
        return this.lines.slice(-n).map((l) => `  [${this.name}] ${l}`).join("\n");
    }
}

/**
 * The production layout of the issue: PostgreSQL (a fresh database), a redis-server of the
 * test's own, `webNodes` × `diquis web` and one `diquis jobs`, all sharing the database, Redis
 * and a JWT key.
 */
class Cluster {
    constructor() {
        this.processes = [];
        this.web = [];
        this.jobs = null;
    }

    /** Starts everything; resolves once every process is ready and root can sign in. */
    static async start({ webNodes = 2, label = "cluster", extraEnv = {} } = {}) {
        const c = new Cluster();
        c.label = label;
        c.dir = fs.mkdtempSync(path.join(os.tmpdir(), `diquis-e2e-${label}-`));
        c.logDir = path.join(c.dir, "logs");
        fs.mkdirSync(c.logDir);
        try {
            c.database = await pg.createDatabase("diquis_e2e");
            const redisDir = path.join(c.dir, "redis");
            fs.mkdirSync(redisDir);
            c.redis = new RedisServer(await freePort(), redisDir);
            await c.redis.start();
            c.jwtKey = crypto.randomBytes(32).toString("hex");
            c.env = {
                ConnectionStrings__DefaultConnection: `Host=${pg.HOST};Port=${pg.PORT};Database=${c.database};Username=${pg.USER}`,
                ConnectionStrings__RedisConnection: c.redis.connectionString,
                Seed__AdminEmail: ROOT_EMAIL,
                Seed__AdminPassword: ROOT_PASSWORD,
                Jwt__Key: c.jwtKey,
                Urls: "http://127.0.0.1:0",
                ...extraEnv,
            };
            // The first process migrates the fresh database and seeds root; the others follow.
            const first = c.addProcess("web1", "web");
            await first.start();
            await first.waitReady();
            c.web.push(first);
            const others = [];
            for (let i = 2; i <= webNodes; i++) {
                const p = c.addProcess(`web${i}`, "web");
                c.web.push(p);
                others.push(p);
            }
            c.jobs = c.addProcess("jobs", "jobs");
            others.push(c.jobs);
            await Promise.all(others.map(async (p) => {
                await p.start();
                await p.waitReady();
            }));
            c.rootToken = await api.login(first.url, ROOT_EMAIL, ROOT_PASSWORD, "root");
            return c;
        } catch (e) {
            e.message += `\n${c.logTails()}`;
            await c.stop();
            throw e;
        }
    }

    addProcess(name, role) {
        const workDir = path.join(this.dir, name);
        fs.mkdirSync(workDir, { recursive: true });
        const p = new DiquisProcess({ name, role, env: this.env, workDir, logFile: path.join(this.logDir, `${name}.log`) });
        this.processes.push(p);
        return p;
    }

    /** Starts the jobs process again (after a kill or stop) and waits until it is ready. */
    async restartJobs() {
        await this.jobs.start();
        await this.jobs.waitReady();
    }

    /** The last lines of every process's output and of redis-server. */
    logTails(n = 40) {
        const parts = this.processes.map((p) => p.tail(n));
        if (this.redis) parts.push(this.redis.log.split("\n").slice(-10).map((l) => `  [redis] ${l}`).join("\n"));
        return `--- process output (full logs in ${this.logDir}) ---\n${parts.join("\n")}`;
    }

    /** Runs `fn`; on failure the error carries the processes' last output. */
    async withLogs(fn) {
        try {
            return await fn();
        } catch (e) {
            e.message += `\n${this.logTails()}`;
            throw e;
        }
    }

    /** Stops every process, redis-server, drops the databases and removes the temp dir. */
    async stop() {
        await Promise.allSettled(this.processes.map((p) => p.stop()));
        if (this.redis) await this.redis.kill().catch(() => {});
        if (this.database) await pg.dropDatabaseFamily(this.database).catch((e) => process.stderr.write(`${e.message}\n`));
        if (!process.env.E2E_KEEP_LOGS) fs.rmSync(this.dir, { recursive: true, force: true });
        else process.stderr.write(`# logs kept in ${this.logDir}\n`);
    }
}

/** Signs an HS256 JWT with `key` (what the server does), for crafted expired tokens. */
function signJwt(claims, key) {
    const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
    const head = b64({ typ: "JWT", alg: "HS256" });
    const body = b64(claims);
    const sig = crypto.createHmac("sha256", key).update(`${head}.${body}`).digest("base64url");
    return `${head}.${body}.${sig}`;
}

/** The claims of a JWT (no verification). */
function jwtClaims(token) {
    return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
}

module.exports = { LIVE_CHILDREN, DiquisProcess, Cluster, diquisBinary, signJwt, jwtClaims, ROOT_EMAIL, ROOT_PASSWORD, ROOT_USER_NAME };
