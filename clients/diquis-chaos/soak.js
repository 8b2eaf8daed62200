"use strict";
// Soak run (scripts/soak.sh; not part of the test command): tenant churn for SOAK_MINUTES
// (default 30) on the chaos suite's deployment, with a fault from the suite's list every
// SOAK_FAULT_EVERY_S seconds (default 60), every kind once per round in a random order. Prints each process's RSS and open file descriptors
// every minute, and at the end the lost and repeated event counts per client and the tenant
// checks. Exits non-zero when an event was lost or a tenant check failed.

const { ChaosCluster } = require("./lib/cluster");
const fs = require("node:fs");
const path = require("node:path");
const api = require("../diquis-e2e/lib/api");
const { until, randomSuffix } = require("../diquis-e2e/lib/wait");
const { ChaosClient } = require("./lib/client");
const { Ledger, Churn, createActiveTenant, checkTenants, checkClients } = require("./lib/churn");

const MINUTES = Number(process.env.SOAK_MINUTES || 30);
const FAULT_EVERY_MS = Number(process.env.SOAK_FAULT_EVERY_S || 60) * 1000;
const FAULT_MS = 10_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

/** RSS (MiB) and open descriptors of a pid, from /proc. */
function usage(pid) {
    try {
        const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
        const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
        const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
        return `${rss.toFixed(1)}MiB/${fds}fd`;
    } catch {
        return "down";
    }
}

function postmasterPid(cluster) {
    try {
        return Number(fs.readFileSync(path.join(cluster.postgres.data, "postmaster.pid"), "utf8").split("\n")[0]);
    } catch {
        return 0;
    }
}

function sample(cluster) {
    const parts = cluster.processes.map((p) => `${p.name}=${p.child ? usage(p.child.pid) : "down"}`);
    parts.push(`redis=${cluster.redis.child ? usage(cluster.redis.child.pid) : "down"}`);
    parts.push(`postmaster=${usage(postmasterPid(cluster))}`);
    return parts.join(" ");
}

function shuffle(list) {
    const a = list.slice();
    for (let i = a.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
}

/** The faults of the chaos suite, without its assertions (the end checks cover them). */
const FAULTS = {
    "redis-freeze": async (c) => {
        c.freezeRedis();
        try {
            await sleep(FAULT_MS);
        } finally {
            c.thawRedis();
        }
    },
    "redis-freeze+jobs-kill": async (c) => {
        c.freezeRedis();
        try {
            await sleep(FAULT_MS / 2);
            await c.jobs.kill("SIGKILL");
            await c.jobs.start();
            await sleep(FAULT_MS / 2);
        } finally {
            c.thawRedis();
        }
    },
    "redis-restart-x3": async (c) => {
        for (let i = 0; i < 3; i++) {
            await c.redis.kill();
            try {
                await sleep(2_000);
            } finally {
                await c.redis.start();
            }
            await sleep(2_000);
        }
    },
    "jobs-kill": async (c) => {
        await c.jobs.kill("SIGKILL");
        await c.jobs.start();
    },
    "web1-kill": async (c) => {
        await c.web1.kill("SIGKILL");
        await sleep(3_000);
        await c.web1.start();
    },
    "db-stop": async (c) => {
        await c.postgres.stop("fast");
        try {
            await sleep(FAULT_MS);
        } finally {
            await c.postgres.start();
        }
    },
    "web2-redis-cut": async (c) => {
        c.redisCut.pause();
        try {
            await sleep(FAULT_MS);
        } finally {
            c.redisCut.resume();
        }
    },
};

async function main() {
    log(`soak: ${MINUTES} min, a fault every ${FAULT_EVERY_MS / 1000} s (each kind once per round), binary ${process.env.DIQUIS_BIN}`);
    const cluster = await ChaosCluster.start({ label: "soak" });
    // Interrupted: stop everything the run started, then leave.
    for (const signal of ["SIGINT", "SIGTERM"]) {
        process.once(signal, () => {
            log(`${signal}: stopping the deployment`);
            cluster.stop().finally(() => process.exit(130));
        });
    }
    const ledger = new Ledger();
    const roots = [];
    const others = [];
    let exitCode = 0;
    try {
        const token = cluster.rootToken;
        const pool = [await createActiveTenant(cluster, token, ledger, `pool-a-${randomSuffix(4)}`), await createActiveTenant(cluster, token, ledger, `pool-b-${randomSuffix(4)}`)];
        const otherId = await createActiveTenant(cluster, token, ledger, `other-${randomSuffix(5)}`);
        const otherToken = await api.login(cluster.web1.url, `owner@${otherId}.test`, "Chaos-Owner-Passw0rd!", otherId);
        roots.push(new ChaosClient("root/hub-a", ChaosCluster.url(cluster.hubA), token), new ChaosClient("root/hub-b", ChaosCluster.url(cluster.hubB), token), new ChaosClient("root/web1", cluster.web1.url, token));
        others.push(new ChaosClient("other-tenant/hub-a", ChaosCluster.url(cluster.hubA), otherToken));
        for (const c of [...roots, ...others]) await c.start();

        // Each isolated tenant is a whole database (~8 MB): fewer of them keep a long run's disk use small.
        const isolatedEvery = Number(process.env.SOAK_ISOLATED_EVERY || 10);
        const churn = new Churn(cluster, token, ledger, { prefix: "soak", pool, pauseMs: 500, isolatedEvery }).start();
        const started = Date.now();
        const end = started + MINUTES * 60_000;
        let nextSample = started;
        let nextFault = started + FAULT_EVERY_MS;
        const faultCounts = {};
        const names = Object.keys(FAULTS);
        const order = [];
        while (Date.now() < end) {
            if (Date.now() >= nextFault) {
                // Every kind once per round, in a random order each round.
                if (order.length === 0) order.push(...shuffle(names));
                const name = order.shift();
                faultCounts[name] = (faultCounts[name] || 0) + 1;
                log(`fault: ${name}`);
                await FAULTS[name](cluster);
                nextFault = Date.now() + FAULT_EVERY_MS;
            }
            if (Date.now() >= nextSample) {
                const minute = Math.round((Date.now() - started) / 60_000);
                log(`minute ${minute}: ${sample(cluster)} tenants=${ledger.tenants.size}`);
                nextSample += 60_000;
            }
            await sleep(1_000);
        }
        await churn.stop();
        log(`churn stopped after ${((Date.now() - started) / 60_000).toFixed(1)} min; faults: ${JSON.stringify(faultCounts)}`);
        await cluster.allReady();
        try {
            const failed = await checkTenants(cluster, ledger, 300_000);
            log(`tenants: ${ledger.tenants.size} accepted, all ended once with one admin; failed with reason: ${failed.length}`);
        } catch (e) {
            exitCode = 1;
            log(`TENANT CHECK FAILED: ${e.message}`);
        }
        try {
            await checkClients(cluster, roots, others, 300_000);
        } catch (e) {
            exitCode = 1;
            log(`CLIENT CHECK FAILED: ${e.message.split("\n")[0]}`);
        }
        const stored = await api.allNotifications(cluster.web1.url, token, 0);
        for (const c of roots) {
            const shown = new Set(c.shownIds());
            const lost = stored.filter((n) => n.id > c.startId && !shown.has(n.id)).length;
            log(`${c.name}: ${shown.size} events shown, lost ${lost}, shown twice 0, repeats dropped by id ${c.repeats()}, reconnects ${c.reconnects}, catch-ups ${c.catchUps}`);
        }
        for (const o of others) log(`${o.name}: ${o.shown.size} events shown (expected 0)`);
        log(`refused requests: ${JSON.stringify(Object.fromEntries(ledger.refused))}; network errors: ${ledger.networkErrors}`);
        log(`final: ${sample(cluster)}`);
    } catch (e) {
        exitCode = 1;
        log(`SOAK FAILED: ${e.stack}\n${cluster.logTails()}`);
    } finally {
        for (const c of [...roots, ...others]) await c.stop();
        await cluster.stop();
    }
    process.exit(exitCode);
}

main();
