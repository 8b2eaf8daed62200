"use strict";
// The chaos suite (issue 16): faults a deployment meets, injected into real processes while
// tenants are created and updated, each followed by the same checks (lib/churn.js). The
// scenarios share one deployment and run in order; each check covers everything since the
// start, so a fault that leaves damage behind fails the scenarios after it too.

const { ChaosCluster } = require("../lib/cluster");
const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");

const api = require("../../diquis-e2e/lib/api");
const pg = require("../../diquis-e2e/lib/postgres");
const { until, randomSuffix } = require("../../diquis-e2e/lib/wait");
const { ChaosClient } = require("../lib/client");
const { Ledger, Churn, createActiveTenant, checkTenants, checkClients, checkProcesses } = require("../lib/churn");

const TEST_TIMEOUT = 240_000;
/** How long each stop, freeze or cut lasts (the 10 s). */
const FAULT_MS = 10_000;

/** Keeps a fault in place for the rest of its duration (the fault's length, not a wait for an event). */
function holdFault(since, ms = FAULT_MS) {
    const left = since + ms - Date.now();
    return left > 0 ? new Promise((resolve) => setTimeout(resolve, left)) : Promise.resolve();
}

describe("chaos: nothing accepted is lost, every event is shown once", () => {
    let cluster;
    let token;
    const ledger = new Ledger();
    let pool = [];
    let roots = [];
    let others = [];

    before(async () => {
        cluster = await ChaosCluster.start({ label: "chaos" });
        token = cluster.rootToken;
        await cluster.withLogs(async () => {
            pool = [await createActiveTenant(cluster, token, ledger, `pool-a-${randomSuffix(4)}`), await createActiveTenant(cluster, token, ledger, `pool-b-${randomSuffix(4)}`)];
            const otherId = await createActiveTenant(cluster, token, ledger, `other-${randomSuffix(5)}`);
            const otherToken = await api.login(cluster.web1.url, `owner@${otherId}.test`, "Chaos-Owner-Passw0rd!", otherId);
            roots = [
                new ChaosClient("root via hub-a (web1, fails over to web2)", ChaosCluster.url(cluster.hubA), token),
                new ChaosClient("root via hub-b (web2, fails over to web1)", ChaosCluster.url(cluster.hubB), token),
                new ChaosClient("root on web1 directly", cluster.web1.url, token),
            ];
            others = [new ChaosClient(`${otherId}'s owner via hub-a`, ChaosCluster.url(cluster.hubA), otherToken)];
            for (const c of [...roots, ...others]) await c.start();
        });
    });

    after(async () => {
        for (const c of [...roots, ...others]) await c.stop();
        if (cluster) await cluster.stop();
    });

    /** Runs `fault` while tenants churn, then the checks; `restarted`: processes it killed. */
    async function scenario(t, name, fault) {
        await cluster.withLogs(async () => {
            const pids = cluster.pids();
            const churn = new Churn(cluster, token, ledger, { prefix: name, pool }).start();
            let restarted = [];
            try {
                restarted = (await fault(churn)) || [];
            } finally {
                await churn.stop();
            }
            const failed = await checkTenants(cluster, ledger);
            await checkClients(cluster, roots, others);
            await checkProcesses(cluster, pids, restarted);
            t.diagnostic(
                `${name}: ${churn.accepted} creations accepted during the scenario; refused: ${JSON.stringify(Object.fromEntries(ledger.refused))}; ` +
                    `failed tenants: ${failed.length}; repeats dropped per client: ${roots.map((c) => c.repeats()).join("/")}; ` +
                    `reconnects: ${roots.map((c) => c.reconnects).join("/")}`,
            );
        });
    }

    /** Resolves once `churn` had `n` more creations accepted (the load reached the fault). */
    function acceptedMore(churn, n, what, ms = 60_000) {
        const target = churn.accepted + n;
        return until(() => churn.accepted >= target, `${n} more tenant creations to be accepted ${what}`, { ms, every: 100 });
    }

    test("Redis frozen (SIGSTOP) for 10 s: readiness reports it, nothing is lost", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "freeze", async (churn) => {
            await acceptedMore(churn, 2, "before the fault");
            const since = Date.now();
            cluster.freezeRedis();
            try {
                // A hung Redis is detected by the command timeout and the health pings, not
                // only by a closed socket.
                await cluster.backplaneReportedDown(cluster.jobs, FAULT_MS - 500);
                await acceptedMore(churn, 2, "while Redis is frozen");
                await holdFault(since);
            } finally {
                cluster.thawRedis();
            }
            await acceptedMore(churn, 2, "after Redis resumed");
        });
    });

    test("Redis frozen, 5 tenants created, the jobs process killed -9, Redis resumed: 5 of 5 events arrive", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "freeze-crash", async () => {
            cluster.freezeRedis();
            const five = [];
            try {
                // Created at once: the first ones are provisioned before any process can tell
                // that Redis hangs, and are published into the frozen Redis.
                for (let i = 0; i < 5; i++) {
                    const id = `hung-${i}-${randomSuffix(4)}`;
                    const via = i % 2 === 0 ? cluster.web1 : cluster.web2;
                    await api.createTenant(via.url, token, { id, name: `Chaos ${id}`, adminEmail: `owner@${id}.test`, password: "Chaos-Owner-Passw0rd!" });
                    ledger.tenants.set(id, { isolated: false, updates: 0 });
                    five.push(id);
                }
                // Provisioned (their outbox rows committed) while Redis cannot take them.
                const list = five.map((id) => pg.literal(id)).join(",");
                await until(
                    async () => (await pg.scalar(cluster.database, `SELECT count(*) FROM notifications WHERE tenant_id IN (${list}) AND event = 'TenantCreated'`)) === "5",
                    "the 5 tenants to be provisioned while Redis is frozen",
                    { ms: 90_000, every: 200 },
                );
                await cluster.backplaneReportedDown(cluster.jobs, FAULT_MS);
                await cluster.jobs.kill("SIGKILL");
                await cluster.jobs.start();
            } finally {
                cluster.thawRedis();
            }
            await cluster.jobs.waitReady();
            const shownOnce = (c, id) => [...c.shown.values()].filter((e) => e.target === "TenantCreated" && e.data.tenantId === id).length === 1;
            for (const c of roots) {
                await until(() => five.every((id) => shownOnce(c, id)), `${c.name} to show TenantCreated for the 5 tenants`, { ms: 60_000 }).catch(() => {});
                assert.equal(five.filter((id) => shownOnce(c, id)).length, 5, `${c.name}: 5 of 5 events`);
            }
            return ["jobs"];
        });
    });

    test("Redis frozen for 10 s with the jobs process killed -9 during the freeze (and churn)", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "freeze-kill", async (churn) => {
            await acceptedMore(churn, 2, "before the fault");
            const since = Date.now();
            cluster.freezeRedis();
            try {
                await acceptedMore(churn, 3, "while Redis is frozen");
                await cluster.jobs.kill("SIGKILL");
                await cluster.jobs.start();
                await holdFault(since);
            } finally {
                cluster.thawRedis();
            }
            await acceptedMore(churn, 2, "after Redis resumed");
            return ["jobs"];
        });
    });

    test("Redis killed and restarted three times in a row", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "redis-restarts", async (churn) => {
            for (let round = 0; round < 3; round++) {
                await acceptedMore(churn, 1, `before kill ${round + 1}`);
                await cluster.redis.kill();
                try {
                    await cluster.backplaneReportedDown(cluster.web1, 30_000);
                    await acceptedMore(churn, 1, `while Redis is down (${round + 1})`);
                } finally {
                    await cluster.redis.start();
                }
            }
            await acceptedMore(churn, 2, "after the last restart");
        });
    });

    test("the jobs process killed -9 mid-provisioning (shared and isolated databases), then restarted", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "jobs-crash", async (churn) => {
            // Pause every provisioning at its last step: the test holds a lock that the admin
            // user's role insert waits for, after the tenant was marked Provisioning (and, for an
            // isolated tenant, after its database was created).
            const lock = await pg.holdTransaction(cluster.database, "LOCK TABLE user_roles IN SHARE MODE;");
            let released = false;
            try {
                const shared = `mid-shared-${randomSuffix(4)}`;
                const isolated = `mid-isolated-${randomSuffix(4)}`;
                for (const [id, own] of [[shared, false], [isolated, true]]) {
                    await api.createTenant(cluster.web2.url, token, { id, name: `Chaos ${id}`, adminEmail: `owner@${id}.test`, password: "Chaos-Owner-Passw0rd!", hasIsolatedDatabase: own });
                    ledger.tenants.set(id, { isolated: own, updates: 0 });
                }
                for (const id of [shared, isolated]) {
                    await api.waitForTenant(cluster.web1.url, token, id, (x) => x.status === "Provisioning", "Provisioning", 60_000);
                }
                await until(
                    async () => Number(await pg.scalar("postgres", `SELECT count(*) FROM pg_stat_activity WHERE datname = ${pg.literal(cluster.database)} AND wait_event_type = 'Lock'`)) >= 2,
                    "both provisioning jobs to wait on the test's lock",
                    { ms: 60_000 },
                );
                await cluster.jobs.kill("SIGKILL");
                await lock.release();
                released = true;
                for (const id of [shared, isolated]) {
                    const during = await api.getTenant(cluster.web1.url, token, id);
                    assert.notEqual(during.status, "Active", `${id}: nothing finished the provisioning while the jobs process was dead`);
                }
            } finally {
                if (!released) await lock.release();
            }
            await cluster.jobs.start();
            await acceptedMore(churn, 2, "after the jobs process restarted");
            return ["jobs"];
        });
    });

    test("a web node killed -9: its clients reconnect to the other node and catch up with ?after=", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "web-crash", async (churn) => {
            const viaA = roots[0];
            const reconnectsBefore = viaA.reconnects;
            await acceptedMore(churn, 2, "before the fault");
            await cluster.web1.kill("SIGKILL");
            // The direct client of web1 has nowhere to go: it is replaced after the restart.
            await until(() => viaA.reconnects > reconnectsBefore && viaA.connection.state === "Connected", `${viaA.name} to reconnect through the proxy`, { ms: 60_000 });
            await until(() => others[0].connection.state === "Connected", `${others[0].name} to reconnect`, { ms: 60_000 });
            await acceptedMore(churn, 3, "while web1 is down");
            await cluster.web1.start();
            await until(() => roots[2].connection.state === "Connected", `${roots[2].name} to reconnect to the restarted web1`, { ms: 60_000 });
            await acceptedMore(churn, 2, "after web1 restarted");
            return ["web1"];
        });
    });

    test("the database stopped for 10 s: the API answers 503, nothing accepted is lost, every process recovers by itself", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "db-stop", async (churn) => {
            await acceptedMore(churn, 2, "before the fault");
            const refusedBefore = ledger.refused.get("create 503") || 0;
            const since = Date.now();
            await cluster.postgres.stop("fast");
            try {
                // A request waits for a connection for the pool's acquire timeout (10 s), then
                // gets 503: the database stays down until one was seen, and at least 10 s.
                await until(() => (ledger.refused.get("create 503") || 0) > refusedBefore, "a tenant creation to be answered 503 while the database is down", { ms: 40_000 });
                await holdFault(since);
            } finally {
                await cluster.postgres.start();
            }
            await acceptedMore(churn, 3, "after the database is back", 90_000);
            // 503 while the database is down; besides, an update may be refused with 409 because
            // the tenant's previous change is still waiting for its job (which the outage held up).
            const unexpected = [...ledger.refused.keys()].filter((k) => !/ 503$/.test(k) && k !== "update 409");
            assert.deepEqual(unexpected, [], "requests refused only with 503 (or 409 for an update still pending)");
        });
    });

    test("web2 cut off from Redis for 10 s by a proxy that stops forwarding (no RST)", { timeout: TEST_TIMEOUT }, async (t) => {
        await scenario(t, "redis-cut", async (churn) => {
            await acceptedMore(churn, 2, "before the fault");
            const since = Date.now();
            cluster.redisCut.pause();
            try {
                await cluster.backplaneReportedDown(cluster.web2, FAULT_MS - 500);
                await acceptedMore(churn, 2, "while web2 is cut off");
                await holdFault(since);
            } finally {
                cluster.redisCut.resume();
            }
            await acceptedMore(churn, 2, "after the cut healed");
        });
    });
});
