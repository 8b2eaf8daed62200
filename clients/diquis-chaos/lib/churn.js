"use strict";
// Tenant churn while a fault is injected, and the checks made after each fault:
//   * every tenant whose creation was answered 202 ends Active (or Failed, with its reason)
//     exactly once, with exactly one admin user; it has exactly one creation event stored, and
//     one update event per update answered 202;
//   * every root client shows every notification stored since it connected, each once (what
//     the page shows after dropping repeats by id), including after reconnect and catch-up;
//   * the other tenant's client shows none;
//   * every process is ready again, and none was restarted except those the scenario killed.

const assert = require("node:assert/strict");
const api = require("../../diquis-e2e/lib/api");
const pg = require("../../diquis-e2e/lib/postgres");
const { until, randomSuffix } = require("../../diquis-e2e/lib/wait");

/** Everything answered, over the whole run: the suite's ledger. */
class Ledger {
    constructor() {
        this.tenants = new Map(); // id -> { isolated, updates: accepted update count }
        this.refused = new Map(); // "create 503" -> count
        this.networkErrors = 0;
    }

    refuse(what, status) {
        const key = `${what} ${status}`;
        this.refused.set(key, (this.refused.get(key) || 0) + 1);
    }
}

/** Creates tenants (by default one in four with its own database) and renames pool tenants, until stopped. */
class Churn {
    /** `isolatedEvery`: one creation in that many asks for an isolated database. */
    constructor(cluster, token, ledger, { prefix, pool, pauseMs = 300, isolatedEvery = 4 }) {
        this.isolatedEvery = isolatedEvery;
        this.cluster = cluster;
        this.token = token;
        this.ledger = ledger;
        this.prefix = prefix;
        this.pool = pool;
        this.pauseMs = pauseMs;
        this.n = 0;
        this.accepted = 0;
        this.running = false;
    }

    start() {
        this.running = true;
        this.done = this.loop();
        return this;
    }

    async stop() {
        this.running = false;
        await this.done;
    }

    /** Sends through the running web nodes in turn; a node that does not answer is skipped. */
    async send(method, path, body) {
        const nodes = this.cluster.liveWeb();
        for (let i = 0; i < nodes.length; i++) {
            const node = nodes[(this.n + i) % nodes.length];
            try {
                return await api.request(node.url, method, path, { token: this.token, body });
            } catch {
                this.ledger.networkErrors++;
            }
        }
        return { status: 0, body: "no web node answered" };
    }

    async loop() {
        while (this.running) {
            const n = this.n++;
            const id = `${this.prefix}-${n}-${randomSuffix(4)}`;
            const isolated = n % this.isolatedEvery === this.isolatedEvery - 1;
            const r = await this.send("POST", "/api/tenants", {
                id,
                name: `Chaos ${id}`,
                adminEmail: `owner@${id}.test`,
                password: "Chaos-Owner-Passw0rd!",
                hasIsolatedDatabase: isolated,
            });
            if (r.status === 202) {
                this.ledger.tenants.set(id, { isolated, updates: 0 });
                this.accepted++;
            } else {
                this.ledger.refuse("create", r.status);
            }
            if (n % 2 === 1 && this.pool.length > 0) {
                const target = this.pool[n % this.pool.length];
                const u = await this.send("PUT", `/api/tenants/${encodeURIComponent(target)}`, { name: `Pool ${target} v${n}`, isActive: true });
                if (u.status === 202) this.ledger.tenants.get(target).updates++;
                else this.ledger.refuse("update", u.status);
            }
            // Pacing of the load (not a synchronisation): about three requests a second.
            await new Promise((resolve) => setTimeout(resolve, this.pauseMs));
        }
    }
}

/** Creates a tenant and waits until it is Active; returns its id. */
async function createActiveTenant(cluster, token, ledger, id, extra = {}) {
    await api.createTenant(cluster.web1.url, token, { id, name: `Chaos ${id}`, adminEmail: `owner@${id}.test`, password: "Chaos-Owner-Passw0rd!", ...extra });
    ledger.tenants.set(id, { isolated: Boolean(extra.hasIsolatedDatabase), updates: 0 });
    await api.waitForTenant(cluster.web1.url, token, id, (t) => t.status === "Active", "Active", 90_000);
    return id;
}

function inList(ids) {
    return ids.map((id) => pg.literal(id)).join(",");
}

/** Waits until the ledger's tenants and updates have all ended, then checks them. */
async function checkTenants(cluster, ledger, ms = 120_000) {
    const ids = [...ledger.tenants.keys()];
    if (ids.length === 0) return;
    const list = inList(ids);
    let pending = [];
    await until(
        async () => {
            const rows = await pg.query(cluster.database, `SELECT id, status FROM tenants WHERE id IN (${list}) AND status NOT IN ('Active', 'Failed')`);
            const events = await eventCounts(cluster, list);
            pending = rows.map((r) => `${r[0]}:${r[1]}`);
            for (const [id, t] of ledger.tenants) {
                const e = events.get(id) || { created: 0, updated: 0 };
                if (e.created < 1 || e.updated < t.updates) pending.push(`${id}: ${e.created} creation, ${e.updated}/${t.updates} update events`);
            }
            return pending.length === 0;
        },
        `every accepted tenant request to end (pending: ${pending.slice(0, 10).join("; ")})`,
        { ms, every: 500 },
    ).catch((e) => {
        e.message += ` — still pending: ${pending.slice(0, 20).join("; ")}`;
        throw e;
    });
    const rows = await pg.query(cluster.database, `SELECT id, status, coalesce(provisioning_error, '') FROM tenants WHERE id IN (${list})`);
    assert.equal(rows.length, ids.length, "every accepted tenant exists, once");
    const admins = new Map((await pg.query(cluster.database, `SELECT tenant_id, count(*) FROM users WHERE tenant_id IN (${list}) GROUP BY tenant_id`)).map((r) => [r[0], Number(r[1])]));
    const events = await eventCounts(cluster, list);
    for (const [id, status, error] of rows) {
        const t = ledger.tenants.get(id);
        const e = events.get(id);
        assert.equal(e.created, 1, `${id}: exactly one creation event stored (got ${e.created})`);
        assert.equal(e.updated, t.updates, `${id}: one update event per accepted update`);
        if (status === "Active") {
            assert.equal(admins.get(id), 1, `${id}: exactly one admin user (got ${admins.get(id) || 0})`);
        } else {
            assert.equal(status, "Failed");
            assert.ok(error.length > 0, `${id}: Failed with its reason`);
        }
    }
    return rows.filter((r) => r[1] === "Failed").map((r) => `${r[0]}: ${r[2]}`);
}

async function eventCounts(cluster, list) {
    const rows = await pg.query(
        cluster.database,
        `SELECT tenant_id, count(*) FILTER (WHERE event IN ('TenantCreated','TenantCreationFailed')), count(*) FILTER (WHERE event IN ('TenantUpdated','TenantUpdateFailed')) ` +
            `FROM notifications WHERE tenant_id IN (${list}) GROUP BY tenant_id`,
    );
    return new Map(rows.map((r) => [r[0], { created: Number(r[1]), updated: Number(r[2]) }]));
}

/** Waits until every root client shows every stored notification since it connected; checks. */
async function checkClients(cluster, roots, others, ms = 120_000) {
    let missing = [];
    const stored = async () => (await pg.query(cluster.database, "SELECT id FROM notifications ORDER BY id")).map((r) => Number(r[0]));
    await until(
        async () => {
            const all = await stored();
            missing = [];
            for (const c of roots) {
                const have = new Set(c.shownIds());
                const lacking = all.filter((id) => id > c.startId && !have.has(id));
                if (lacking.length) missing.push(`${c.name} lacks ${lacking.length} (${lacking.slice(0, 8).join(",")})`);
            }
            return missing.length === 0;
        },
        "every root client to show every stored notification",
        { ms, every: 500 },
    ).catch((e) => {
        e.message += ` — ${missing.join("; ")}`;
        throw e;
    });
    const all = await stored();
    for (const c of roots) {
        assert.deepEqual(c.shownIds(), all.filter((id) => id > c.startId), `${c.name}: shows each stored notification exactly once, nothing else`);
        assert.deepEqual(c.errors, [], `${c.name}: no catch-up failed`);
        assert.equal(c.closed, null, `${c.name}: never gave up reconnecting`);
    }
    for (const o of others) {
        assert.equal(o.shown.size, 0, `${o.name} (another tenant's user) saw none of root's events: ${JSON.stringify([...o.shown.values()].slice(0, 3))}`);
    }
}

/** Every process ready, and the same process ids as `before` except `restarted`. */
async function checkProcesses(cluster, before, restarted = []) {
    await cluster.allReady();
    const now = cluster.pids();
    for (const [name, pid] of Object.entries(before)) {
        if (restarted.includes(name)) continue;
        assert.equal(now[name], pid, `${name} kept running (no restart needed) through the fault`);
    }
}

module.exports = { Ledger, Churn, createActiveTenant, checkTenants, checkClients, checkProcesses };
