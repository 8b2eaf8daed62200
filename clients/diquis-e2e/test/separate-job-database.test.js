"use strict";
// A job storage in a database of its own, as Hangfire users often run it: `diquis web` and
// `diquis jobs` with ConnectionStrings:HangfireConnection naming a second PostgreSQL database.
// Tenant jobs go through the job outbox of the application database; the official client still
// gets each event exactly once, and the jobs live only in the job database.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");

const { Cluster, ROOT_USER_NAME } = require("../lib/diquis");
const api = require("../lib/api");
const pg = require("../lib/postgres");
const { connectHub, stopAll } = require("../lib/hub");
const { barrier, assertMatchesStored } = require("../lib/checks");
const payloads = require("../lib/payloads");
const { randomSuffix, until } = require("../lib/wait");

const TEST_TIMEOUT = 240_000;

describe("a separate job database: diquis web + diquis jobs, HangfireConnection on a second PostgreSQL database", () => {
    let cluster;
    let jobsDatabase;
    let token;
    let conns = [];

    before(async () => {
        // Named here, created by Diquis at start (as for DefaultConnection), dropped afterwards.
        jobsDatabase = `diquis_e2e_jobs_${randomSuffix(10)}`;
        cluster = await Cluster.start({
            label: "jobdb",
            webNodes: 1,
            extraEnv: { ConnectionStrings__HangfireConnection: `Host=${pg.HOST};Port=${pg.PORT};Database=${jobsDatabase};Username=${pg.USER}` },
        });
        token = cluster.rootToken;
        await cluster.withLogs(async () => {
            conns = [await connectHub(cluster.web[0].url, token, "root@web1"), await connectHub(cluster.jobs.url, token, "root@jobs")];
        });
    });

    after(async () => {
        await stopAll(conns);
        if (cluster) await cluster.stop();
        if (jobsDatabase) await pg.dropDatabaseFamily(jobsDatabase);
    });

    test("TenantCreated and TenantUpdated reach the official client once; the jobs ran in the job database", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const web = cluster.web[0];
            for (const node of [web, cluster.jobs]) {
                // The checks' descriptions are shown to root administrators only.
                const r = await fetch(`${node.url}/health/ready`, { headers: { authorization: `Bearer ${token}` } });
                const body = await r.json();
                assert.equal(r.status, 200, JSON.stringify(body));
                assert.match(body.entries.jobs.description, /separate database/, `${node.name}: ${JSON.stringify(body)}`);
            }

            const id = `apart-${randomSuffix(6)}`;
            await api.createTenant(web.url, token, { id, name: "Apart Academy", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await Promise.all(conns.map((c) => c.waitForEvent("TenantCreated", id, 60_000)));
            await api.waitForTenant(web.url, token, id, (t) => t.status === "Active", "Active");
            await api.updateTenant(web.url, token, id, { name: "Apart United", isActive: true });
            await Promise.all(conns.map((c) => c.waitForEvent("TenantUpdated", id, 60_000)));
            await barrier(web.url, token, conns);
            for (const c of conns) {
                payloads.assertTenantCreated(c.assertExactlyOnce("TenantCreated", id), { userId: ROOT_USER_NAME, tenantId: id, tenantName: "Apart Academy" });
                payloads.assertTenantUpdated(c.assertExactlyOnce("TenantUpdated", id), { userId: ROOT_USER_NAME, tenantId: id, tenantName: "Apart United" });
                c.assertNoRepeats();
                c.assertStillConnected();
            }
            await assertMatchesStored(web.url, token, conns, id);
            const admins = await pg.scalar(cluster.database, `SELECT count(*) FROM users WHERE tenant_id = ${pg.literal(id)}`);
            assert.equal(admins, "1", "exactly one admin user");

            // The two jobs are in the job database (their completion is recorded just after the
            // result, so poll), the outbox rows were relayed and deleted, and the application
            // database has no job tables at all.
            const like = pg.literal(`%"tenantId":"${id}"%`);
            await until(
                async () => (await pg.scalar(jobsDatabase, `SELECT count(*) FROM bg_jobs WHERE state = 'Succeeded' AND payload LIKE ${like}`)) === "2",
                `both jobs of ${id} to be Succeeded in ${jobsDatabase}`,
                { ms: 30_000 },
            );
            assert.equal(await pg.scalar(jobsDatabase, `SELECT count(*) FROM bg_jobs WHERE payload LIKE ${like}`), "2", "one job per request");
            assert.equal(await pg.scalar(cluster.database, "SELECT count(*) FROM job_requests"), "0", "every job request was relayed");
            assert.equal(await pg.scalar(cluster.database, "SELECT to_regclass('bg_jobs') IS NULL"), "t", "no job tables in the application database");
        });
    });

    test("a tenant created while the jobs process is down is provisioned once it is back", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const web = cluster.web[0];
            await cluster.jobs.stop();
            const id = `waits-${randomSuffix(6)}`;
            await api.createTenant(web.url, token, { id, name: "Waiting Rovers", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            // The web node's relay moves the request into the job database, where it waits.
            const like = pg.literal(`%"tenantId":"${id}"%`);
            await until(
                async () => (await pg.scalar(jobsDatabase, `SELECT count(*) FROM bg_jobs WHERE state = 'Enqueued' AND payload LIKE ${like}`)) === "1",
                `the job of ${id} to wait Enqueued in ${jobsDatabase}`,
                { ms: 30_000 },
            );
            await cluster.restartJobs();
            await stopAll([conns[1]]);
            conns[1] = await connectHub(cluster.jobs.url, token, "root@jobs (restarted)");
            await conns[0].waitForEvent("TenantCreated", id, 60_000);
            await barrier(web.url, token, conns);
            const created = conns[0].assertExactlyOnce("TenantCreated", id);
            payloads.assertTenantCreated(created, { userId: ROOT_USER_NAME, tenantId: id, tenantName: "Waiting Rovers" });
            conns[0].assertNoRepeats();
            const row = await api.getTenant(web.url, token, id);
            assert.equal(row.status, "Active");
        });
    });
});
