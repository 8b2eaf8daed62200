"use strict";
// No loss (issue 6, "Tests"): the test's redis-server SIGKILLed while tenants are created, then
// started again on the same port: every event still arrives, once, at every connection. The jobs
// process SIGKILLed in the middle of a provisioning, then started again: the tenant ends Active
// with exactly one admin user, and its event arrives once.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");

const { Cluster, ROOT_USER_NAME } = require("../lib/diquis");
const api = require("../lib/api");
const pg = require("../lib/postgres");
const { connectHub, stopAll } = require("../lib/hub");
const { barrier, assertMatchesStored } = require("../lib/checks");
const payloads = require("../lib/payloads");
const { randomSuffix, until } = require("../lib/wait");

const TEST_TIMEOUT = 300_000;

/** The backplane's reconnect counter from a node's Prometheus metrics. */
async function backplaneReconnects(base) {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("signalr_redis_reconnects_total"));
    return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

describe("no loss: Redis outage and a crash of the jobs process", () => {
    let cluster;
    let token;
    let conns = [];

    before(async () => {
        cluster = await Cluster.start({ label: "noloss" });
        token = cluster.rootToken;
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            conns = [await connectHub(web1.url, token, "root@web1"), await connectHub(web2.url, token, "root@web2")];
        });
    });

    after(async () => {
        await stopAll(conns);
        if (cluster) await cluster.stop();
    });

    test("the backplane subscribers survive their keep-alive PINGs while events flow: no silent reconnect, no loss", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            const reconnectsBefore = await Promise.all(cluster.processes.map((p) => backplaneReconnects(p.url)));
            // Every node's backplane subscriber, as Redis sees it: it holds the hub's channels
            // (four or more). Each node's other subscriber, on the one revocations channel of the
            // application, is not the backplane's.
            const subscribers = (await cluster.redis.clients()).filter((c) => Number(c.sub) > 1 || Number(c.psub) > 0);
            assert.equal(subscribers.length, cluster.processes.length, `one subscriber per node: ${JSON.stringify(subscribers)}`);
            const ids = new Set(subscribers.map((c) => c.id));
            // Keep tenant events flowing until Redis has seen every one of those subscribers send
            // its idle keep-alive PING (every 15 s by default), or one of them went away.
            const created = [];
            const pinged = new Set();
            const deadline = Date.now() + 120_000;
            while (pinged.size < ids.size) {
                assert.ok(Date.now() < deadline, `every subscriber sent a keep-alive PING within 120 s (seen: ${[...pinged]})`);
                const id = `steady-${created.length}-${randomSuffix(5)}`;
                const via = created.length % 2 === 0 ? web1 : web2;
                await api.createTenant(via.url, token, { id, name: `Steady ${created.length}`, adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
                created.push(id);
                await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", id, 60_000)));
                const now = await cluster.redis.clients();
                for (const id0 of ids) {
                    const c = now.find((x) => x.id === id0);
                    assert.ok(c, `subscriber connection ${id0} is still open (a node reconnected its subscriber): ${JSON.stringify(now)}`);
                    if (c.cmd === "ping") pinged.add(id0);
                }
            }
            await barrier(web1.url, token, conns);
            const after = await cluster.redis.clients();
            for (const id0 of ids) {
                assert.ok(after.some((x) => x.id === id0), `subscriber connection ${id0} survived its PING`);
            }
            const reconnectsAfter = await Promise.all(cluster.processes.map((p) => backplaneReconnects(p.url)));
            assert.deepEqual(reconnectsAfter, reconnectsBefore, "signalr_redis_reconnects_total did not grow while Redis was up");
            for (const id of created) {
                for (const c of conns) c.assertExactlyOnce("TenantCreated", id);
            }
            for (const c of conns) {
                c.assertNoRepeats();
                c.assertStillConnected();
            }
        });
    });

    test("Redis killed while tenants are created, then restarted on the same port: every event arrives once", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            await cluster.redis.kill();
            // The API and the jobs need only the database: tenants are accepted and provisioned
            // while Redis is away, and their notifications wait in the outbox.
            const tenants = [];
            for (let i = 0; i < 4; i++) {
                const id = `outage-${i}-${randomSuffix(5)}`;
                const via = i % 2 === 0 ? web1 : web2;
                await api.createTenant(via.url, token, { id, name: `Outage Academy ${i}`, adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
                tenants.push({ id, name: `Outage Academy ${i}` });
            }
            for (const t of tenants) {
                await api.waitForTenant(web1.url, token, t.id, (x) => x.status === "Active", "Active while Redis is down", 90_000);
            }
            // The nodes notice the outage (readiness names the backplane).
            await until(
                async () => {
                    const r = await fetch(`${web1.url}/health/ready`);
                    const body = await r.text();
                    return r.status === 503 && /backplane/i.test(body);
                },
                "web1's /health/ready to answer 503 naming the backplane while Redis is down",
                { ms: 30_000 },
            );

            await cluster.redis.start();
            for (const t of tenants) {
                await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", t.id, 90_000)));
            }
            await barrier(web1.url, token, conns, 90_000);
            for (const t of tenants) {
                for (const c of conns) {
                    payloads.assertTenantCreated(c.assertExactlyOnce("TenantCreated", t.id), { userId: ROOT_USER_NAME, tenantId: t.id, tenantName: t.name });
                }
                await assertMatchesStored(web2.url, token, conns, t.id);
            }
            for (const c of conns) {
                c.assertNoRepeats();
                // The browsers' sockets are with the web nodes, not with Redis: they stay open.
                c.assertStillConnected();
            }
            for (const node of [...cluster.web, cluster.jobs]) await node.waitReady();
        });
    });

    test("the jobs process killed mid-provisioning, then restarted: Active, one admin user, the event once", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            const id = `crash-${randomSuffix(6)}`;
            const adminEmail = `owner@${id}.test`;
            const adminPassword = "Crash-Owner-Passw0rd!";
            // Pause the job at a known point in the middle of provisioning: the tenant's own
            // database exists, and the test holds a lock on its table, so the job's write waits
            // (after it marked the tenant Provisioning, before it finished).
            const tenantDb = `${cluster.database}-${id}`;
            await pg.query("postgres", `CREATE DATABASE ${pg.ident(tenantDb)}`);
            await pg.query(tenantDb, "CREATE TABLE tenant_metadata (tenant_id TEXT PRIMARY KEY, provisioned_on TIMESTAMPTZ NOT NULL)");
            const lock = await pg.holdTransaction(tenantDb, "LOCK TABLE tenant_metadata IN ACCESS EXCLUSIVE MODE;");
            let released = false;
            try {
                await api.createTenant(web1.url, token, { id, name: "Crash Test Academy", adminEmail, password: adminPassword, hasIsolatedDatabase: true });
                await api.waitForTenant(web1.url, token, id, (t) => t.status === "Provisioning", "Provisioning", 60_000);
                await until(
                    async () => (await pg.scalar("postgres", `SELECT count(*) FROM pg_stat_activity WHERE datname = ${pg.literal(tenantDb)} AND wait_event_type = 'Lock'`)) !== "0",
                    "the provisioning job to wait on the test's lock in the tenant database",
                    { ms: 60_000 },
                );
                await cluster.jobs.kill("SIGKILL");
                await lock.release();
                released = true;
            } finally {
                if (!released) await lock.release();
            }
            const during = await api.getTenant(web2.url, token, id);
            assert.notEqual(during.status, "Active", "nothing finished the provisioning while the jobs process was dead");
            assert.equal(conns.some((c) => c.eventsFor("TenantCreated", id).length > 0), false, "no TenantCreated before the job really finished");

            await cluster.restartJobs();
            // The dead worker's lease expires (30 s by default) and the job runs again.
            await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", id, 150_000)));
            await barrier(web2.url, token, conns);
            for (const c of conns) {
                payloads.assertTenantCreated(c.assertExactlyOnce("TenantCreated", id), { userId: ROOT_USER_NAME, tenantId: id, tenantName: "Crash Test Academy" });
                assert.equal(c.eventsFor("TenantCreationFailed", id).length, 0, `${c.name}: no failure event for a crash that was retried`);
                c.assertNoRepeats();
                c.assertStillConnected();
            }
            await assertMatchesStored(web1.url, token, conns, id);
            const row = await api.getTenant(web1.url, token, id);
            assert.equal(row.status, "Active");
            assert.equal(row.provisioningError, null);
            const admins = await pg.query(cluster.database, `SELECT email FROM users WHERE tenant_id = ${pg.literal(id)}`);
            assert.deepEqual(admins, [[adminEmail]], "exactly one admin user exists for the tenant");
            const roles = await pg.query(
                cluster.database,
                `SELECT r.role FROM user_roles r JOIN users u ON u.id = r.user_id WHERE u.tenant_id = ${pg.literal(id)} ORDER BY r.role`,
            );
            assert.deepEqual(roles, [["academy_owner"]], "the admin has the tenant owner role once");
            // The admin is a working account of the new tenant.
            const adminToken = await api.login(web2.url, adminEmail, adminPassword, id);
            assert.ok(adminToken.length > 0);
        });
    });
});
