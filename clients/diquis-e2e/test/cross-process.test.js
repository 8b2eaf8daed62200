"use strict";
// End to end across processes (issue 6, "Tests"): two `diquis web` processes and one
// `diquis jobs` on a fresh PostgreSQL database and a redis-server of the test's own. Official
// client connections signed in as root on each node receive every tenant event exactly once,
// with the .NET jobs process's payload plus `id`, whichever node the API call went to.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");

const { Cluster, ROOT_USER_NAME } = require("../lib/diquis");
const api = require("../lib/api");
const pg = require("../lib/postgres");
const { connectHub, stopAll } = require("../lib/hub");
const { barrier, assertMatchesStored } = require("../lib/checks");
const payloads = require("../lib/payloads");
const { randomSuffix } = require("../lib/wait");

const TEST_TIMEOUT = 240_000;

describe("across processes: 2 × diquis web + diquis jobs, PostgreSQL, Redis", () => {
    let cluster;
    let token;
    let conns = [];

    before(async () => {
        cluster = await Cluster.start({ label: "cross" });
        token = cluster.rootToken;
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            conns = [
                await connectHub(web1.url, token, "root@web1"),
                await connectHub(web2.url, token, "root@web2"),
                // The jobs process maps the same hub (as in the seed); its clients are served too.
                await connectHub(cluster.jobs.url, token, "root@jobs"),
            ];
        });
    });

    after(async () => {
        await stopAll(conns);
        if (cluster) await cluster.stop();
    });

    test("TenantCreated reaches every root connection on every node exactly once, with the payload", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            const tenants = [
                { via: web1, id: `acme-${randomSuffix(6)}`, name: "Acme Football Academy" },
                { via: web2, id: `zenit-${randomSuffix(6)}`, name: "Zenit Juniors" },
            ];
            for (const t of tenants) {
                await api.createTenant(t.via.url, token, { id: t.id, name: t.name, adminEmail: `owner@${t.id}.test`, password: "Owner-Passw0rd!" });
            }
            for (const t of tenants) {
                await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", t.id, 60_000)));
            }
            await barrier(web1.url, token, conns);
            for (const t of tenants) {
                const ids = new Set();
                for (const c of conns) {
                    const data = c.assertExactlyOnce("TenantCreated", t.id);
                    payloads.assertTenantCreated(data, { userId: ROOT_USER_NAME, tenantId: t.id, tenantName: t.name });
                    ids.add(data.id);
                }
                assert.equal(ids.size, 1, `every node delivered the same event (one id) for ${t.id}: ${[...ids]}`);
                await assertMatchesStored(web2.url, token, conns, t.id);
                // The API on either node sees the provisioned tenant.
                for (const node of cluster.web) {
                    const row = await api.getTenant(node.url, token, t.id);
                    assert.equal(row.status, "Active", `${t.id} on ${node.name}`);
                    assert.equal(row.name, t.name);
                    assert.equal(row.isActive, true);
                }
            }
            for (const c of conns) {
                c.assertNoRepeats();
                c.assertStillConnected();
            }
        });
    });

    test("TenantUpdated reaches every root connection exactly once, with the payload", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            const id = `rename-${randomSuffix(6)}`;
            await api.createTenant(web1.url, token, { id, name: "Before Rename", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", id, 60_000)));
            await api.waitForTenant(web1.url, token, id, (t) => t.status === "Active", "Active");

            const newName = "After Rename";
            await api.updateTenant(web2.url, token, id, { name: newName, isActive: false });
            await Promise.all(conns.map((c) => c.waitForEvent("TenantUpdated", id, 60_000)));
            await barrier(web2.url, token, conns);
            const ids = new Set();
            for (const c of conns) {
                const data = c.assertExactlyOnce("TenantUpdated", id);
                payloads.assertTenantUpdated(data, { userId: ROOT_USER_NAME, tenantId: id, tenantName: newName });
                ids.add(data.id);
                c.assertExactlyOnce("TenantCreated", id);
            }
            assert.equal(ids.size, 1, "one event id on every node");
            await assertMatchesStored(web1.url, token, conns, id);
            const row = await api.getTenant(web1.url, token, id);
            assert.equal(row.name, newName);
            assert.equal(row.isActive, false);
            assert.equal(row.status, "Active");
            for (const c of conns) c.assertNoRepeats();
        });
    });

    test("TenantCreationFailed when the isolated database cannot be prepared; the retry then provisions the tenant", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            const id = `broken-${randomSuffix(6)}`;
            // An isolated tenant's database is `<main database>-<id>`. One left behind with a table
            // that refuses every row makes provisioning fail, as a real leftover database would.
            const tenantDb = `${cluster.database}-${id}`;
            await pg.query("postgres", `CREATE DATABASE ${pg.ident(tenantDb)}`);
            await pg.query(
                tenantDb,
                "CREATE TABLE tenant_metadata (tenant_id TEXT PRIMARY KEY, provisioned_on TIMESTAMPTZ NOT NULL, CONSTRAINT e2e_refuse_rows CHECK (false))",
            );
            await api.createTenant(web2.url, token, {
                id,
                name: "Broken Database FC",
                adminEmail: `owner@${id}.test`,
                password: "Owner-Passw0rd!",
                hasIsolatedDatabase: true,
            });
            const failures = await Promise.all(conns.map((c) => c.waitForEvent("TenantCreationFailed", id, 60_000)));
            for (const f of failures) {
                payloads.assertTenantCreationFailed(f.data, { userId: ROOT_USER_NAME, tenantId: id, errorIncludes: "e2e_refuse_rows" });
            }
            assert.equal(new Set(failures.map((f) => f.data.id)).size, 1, "one event id on every node");
            const failed = await api.waitForTenant(web1.url, token, id, (t) => t.status === "Failed", "Failed");
            assert.ok(failed.provisioningError && failed.provisioningError.includes("e2e_refuse_rows"), `provisioningError: ${failed.provisioningError}`);

            // Repair the database: the job's automatic retry (Hangfire's policy: 15–45 s for the
            // first) now provisions the tenant, once, without "user already exists".
            await pg.query(tenantDb, "ALTER TABLE tenant_metadata DROP CONSTRAINT e2e_refuse_rows");
            await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", id, 150_000)));
            await barrier(web1.url, token, conns);
            for (const c of conns) {
                const created = c.assertExactlyOnce("TenantCreated", id);
                payloads.assertTenantCreated(created, { userId: ROOT_USER_NAME, tenantId: id, tenantName: "Broken Database FC" });
                c.assertNoRepeats();
            }
            await assertMatchesStored(web1.url, token, conns, id);
            const row = await api.getTenant(web1.url, token, id);
            assert.equal(row.status, "Active");
            assert.equal(row.provisioningError, null);
            const admins = await pg.scalar(cluster.database, `SELECT count(*) FROM users WHERE tenant_id = ${pg.literal(id)}`);
            assert.equal(admins, "1", "exactly one admin user after the failed attempt and the retry");
            const rows = await pg.scalar(tenantDb, `SELECT count(*) FROM tenant_metadata WHERE tenant_id = ${pg.literal(id)}`);
            assert.equal(rows, "1", "the tenant's own database records it");
        });
    });

    test("TenantUpdateFailed when the tenant is gone before its update job runs", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            const id = `vanish-${randomSuffix(6)}`;
            await api.createTenant(web1.url, token, { id, name: "Vanishing United", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", id, 60_000)));
            await api.waitForTenant(web1.url, token, id, (t) => t.status === "Active", "Active");

            // With the jobs process stopped, the update waits in the queue; meanwhile an operator
            // deletes the tenant. The job must then fail cleanly and say so.
            await cluster.jobs.stop();
            await api.updateTenant(web2.url, token, id, { name: "Never Applied", isActive: true });
            const lit = pg.literal(id);
            await pg.query(
                cluster.database,
                `BEGIN;
                 DELETE FROM refresh_tokens WHERE user_id IN (SELECT id FROM users WHERE tenant_id = ${lit});
                 DELETE FROM user_roles WHERE user_id IN (SELECT id FROM users WHERE tenant_id = ${lit});
                 DELETE FROM users WHERE tenant_id = ${lit};
                 DELETE FROM tenants WHERE id = ${lit};
                 COMMIT;`,
            );
            // The jobs node's connection went away with its process; it reconnects after the restart.
            await cluster.restartJobs();
            const jobsConn = await connectHub(cluster.jobs.url, token, "root@jobs (restarted)");
            const live = [conns[0], conns[1]];
            try {
                const failures = await Promise.all(live.map((c) => c.waitForEvent("TenantUpdateFailed", id, 60_000)));
                for (const f of failures) {
                    payloads.assertTenantUpdateFailed(f.data, { userId: ROOT_USER_NAME, tenantId: id, errorIncludes: "Tenant not found" });
                }
                await barrier(web1.url, token, [...live, jobsConn]);
                for (const c of live) {
                    c.assertExactlyOnce("TenantUpdateFailed", id);
                    assert.equal(c.eventsFor("TenantUpdated", id).length, 0, `${c.name}: no TenantUpdated for a deleted tenant`);
                    c.assertNoRepeats();
                }
                await assertMatchesStored(web1.url, token, live, id);
                assert.equal(await api.getTenant(web1.url, token, id), undefined, "the tenant stays deleted");
            } finally {
                conns[2] = jobsConn;
            }
        });
    });
});
