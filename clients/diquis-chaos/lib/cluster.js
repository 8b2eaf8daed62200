"use strict";
// The deployment the chaos suite breaks, all real processes of its own: a PostgreSQL instance,
// a redis-server, two `diquis web` nodes and one `diquis jobs`, on free ports that stay fixed
// (a killed process comes back on the same port). web2 reaches Redis through a TCP proxy (the
// network cut), and the hub clients reach the web nodes through fail-over proxies.

const { pgPort } = require("./env");
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { DiquisProcess, ROOT_EMAIL, ROOT_PASSWORD } = require("../../diquis-e2e/lib/diquis");
const { RedisServer, freePort } = require("../../diquis-e2e/lib/redis");
const pg = require("../../diquis-e2e/lib/postgres");
const api = require("../../diquis-e2e/lib/api");
const { until, within } = require("../../diquis-e2e/lib/wait");
const { PostgresServer } = require("./postgres-server");
const { TcpProxy } = require("./proxy");

/**
 * Redis as every process is given it: commands unanswered for 2 s mean a hung Redis (the
 * backplane turns unhealthy and the outbox waits), connects give up after 2 s.
 */
function redisConnectionString(port) {
    return `127.0.0.1:${port},abortConnect=false,syncTimeout=2000,connectTimeout=2000`;
}

class ChaosCluster {
    static async start({ label = "chaos" } = {}) {
        const c = new ChaosCluster();
        c.dir = fs.mkdtempSync(path.join(os.tmpdir(), `diquis-${label}-`));
        c.logDir = path.join(c.dir, "logs");
        fs.mkdirSync(c.logDir);
        c.processes = [];
        c.proxies = [];
        try {
            c.postgres = new PostgresServer(pgPort);
            await c.postgres.init();
            c.database = await pg.createDatabase("diquis_chaos");
            const redisDir = path.join(c.dir, "redis");
            fs.mkdirSync(redisDir);
            c.redis = new RedisServer(await freePort(), redisDir);
            await c.redis.start();
            c.redisCut = await c.proxy("redis-for-web2", [c.redis.port]);
            const [web1Port, web2Port, jobsPort] = [await freePort(), await freePort(), await freePort()];
            const base = {
                ConnectionStrings__DefaultConnection: `Host=127.0.0.1;Port=${pgPort};Database=${c.database};Username=postgres`,
                Seed__AdminEmail: ROOT_EMAIL,
                Seed__AdminPassword: ROOT_PASSWORD,
                Jwt__Key: crypto.randomBytes(32).toString("hex"),
                // A killed worker's job runs again 5 s after its last lease renewal.
                Jobs__LeaseSeconds: "5",
            };
            const direct = redisConnectionString(c.redis.port);
            c.web1 = c.add("web1", "web", { ...base, ConnectionStrings__RedisConnection: direct, Urls: `http://127.0.0.1:${web1Port}` });
            c.web2 = c.add("web2", "web", { ...base, ConnectionStrings__RedisConnection: redisConnectionString(c.redisCut.port), Urls: `http://127.0.0.1:${web2Port}` });
            c.jobs = c.add("jobs", "jobs", { ...base, ConnectionStrings__RedisConnection: direct, Urls: `http://127.0.0.1:${jobsPort}` });
            await c.web1.start();
            await c.web1.waitReady();
            await Promise.all([c.web2, c.jobs].map(async (p) => {
                await p.start();
                await p.waitReady();
            }));
            // Hub clients: "a" prefers web1, "b" prefers web2; each fails over to the other.
            c.hubA = await c.proxy("hub-a", [web1Port, web2Port]);
            c.hubB = await c.proxy("hub-b", [web2Port, web1Port]);
            c.rootToken = await api.login(c.web1.url, ROOT_EMAIL, ROOT_PASSWORD, "root");
            return c;
        } catch (e) {
            e.message += `\n${c.logTails()}`;
            await c.stop();
            throw e;
        }
    }

    add(name, role, env) {
        const workDir = path.join(this.dir, name);
        fs.mkdirSync(workDir, { recursive: true });
        const p = new DiquisProcess({ name, role, env, workDir, logFile: path.join(this.logDir, `${name}.log`) });
        this.processes.push(p);
        return p;
    }

    async proxy(name, targets) {
        const p = new TcpProxy(name, targets);
        await p.start();
        this.proxies.push(p);
        return p;
    }

    /** The URL of a proxy. */
    static url(proxy) {
        return `http://127.0.0.1:${proxy.port}`;
    }

    /** The web nodes that are running. */
    liveWeb() {
        return [this.web1, this.web2].filter((p) => p.running);
    }

    /** Process ids by name (to prove that nothing was restarted behind the suite's back). */
    pids() {
        return Object.fromEntries(this.processes.map((p) => [p.name, p.child ? p.child.pid : null]));
    }

    /** Resolves once every diquis process answers /health/ready 200. */
    async allReady(ms = 90_000) {
        await Promise.all(this.processes.map((p) => p.waitReady(ms)));
    }

    /** Freezes redis-server (SIGSTOP): connections stay open, nothing is answered. */
    freezeRedis() {
        this.redis.child.kill("SIGSTOP");
        this.redisFrozen = true;
    }

    /** Lets redis-server run again (SIGCONT). */
    thawRedis() {
        if (this.redis.child) this.redis.child.kill("SIGCONT");
        this.redisFrozen = false;
    }

    /** Resolves once `node` answers /health/ready 503 naming the backplane. */
    async backplaneReportedDown(node, ms) {
        let last = "";
        await until(
            async () => {
                const r = await within(fetch(`${node.url}/health/ready`), `${node.name} /health/ready`, 8_000);
                last = `${r.status} ${await r.text()}`;
                const body = JSON.parse(last.slice(4));
                return r.status === 503 && body.entries.backplane.status === "Unhealthy";
            },
            `${node.name}'s /health/ready to report the backplane Unhealthy (last: ${last})`,
            { ms, every: 200 },
        );
        return last;
    }

    logTails(n = 30) {
        const parts = (this.processes || []).map((p) => p.tail(n));
        if (this.redis) parts.push(this.redis.log.split("\n").slice(-8).map((l) => `  [redis] ${l}`).join("\n"));
        if (this.postgres) parts.push(this.postgres.tail(10));
        return `--- process output (full logs in ${this.logDir}; set E2E_KEEP_LOGS=1 to keep them) ---\n${parts.join("\n")}`;
    }

    async withLogs(fn) {
        try {
            return await fn();
        } catch (e) {
            e.message += `\n${this.logTails()}`;
            throw e;
        }
    }

    async stop() {
        if (this.redisFrozen) this.thawRedis();
        await Promise.allSettled((this.processes || []).map((p) => p.stop()));
        await Promise.allSettled((this.proxies || []).map((p) => p.close()));
        if (this.redis) await this.redis.kill().catch(() => {});
        if (this.postgres) await this.postgres.destroy().catch((e) => process.stderr.write(`${e.message}\n`));
        if (!process.env.E2E_KEEP_LOGS) fs.rmSync(this.dir, { recursive: true, force: true });
        else process.stderr.write(`# logs kept in ${this.logDir}\n`);
    }
}

module.exports = { ChaosCluster, redisConnectionString };
