// No loss: tenants created while Redis is down get their events once Redis is back; a jobs
// process killed in the middle of a provisioning is replaced and the tenant ends Active with one
// admin user and its event delivered.
"use strict";

const { spawn } = require("node:child_process");
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");

let redis, db, webA, webB, jobs;
const hubs = [];

before(async () => {
  redis = await h.startRedis();
  db = h.freshDatabase();
  webA = await h.startDiquis("web", { db, redis });
  webB = await h.startDiquis("web", { db, redis });
  jobs = await h.startDiquis("jobs", { db, redis });
  for (const n of [webA, webB, jobs]) await h.ready(n);
});

after(async () => {
  for (const hub of hubs) await hub.connection.stop();
  for (const n of [webA, webB, jobs]) if (n) await h.stopDiquis(n);
  if (redis) await redis.stop();
  if (db) db.drop();
});

test("tenants created while Redis is stopped: every event arrives after it restarts", async () => {
  const root = await h.login(webA.url, h.ADMIN_EMAIL, h.ADMIN_PASSWORD);
  const rootA = await h.connectHub(webA.url, root);
  const rootB = await h.connectHub(webB.url, root);
  hubs.push(rootA, rootB);

  await redis.stop();
  await h.until(async () => (await fetch(`${jobs.url}/health/ready`)).status === 503, "the jobs process sees Redis down");
  const ids = ["down-1", "down-2", "down-3"];
  for (const id of ids) {
    const r = await h.api("POST", `${webA.url}/api/tenants`, root, h.newTenant(id));
    assert.equal(r.status, 202, JSON.stringify(r.body));
  }
  for (const id of ids) await h.waitActive(webA.url, root, id);
  const unsent = Number(h.psql(db.name, "SELECT COUNT(*) FROM notifications WHERE sent_on IS NULL"));
  assert.equal(unsent, 3, "the events wait in the outbox while Redis is down");

  await redis.start();
  for (const c of [rootA, rootB]) for (const id of ids) await c.waitFor("TenantCreated", id);
  for (const c of [rootA, rootB]) for (const id of ids) assert.equal(c.of("TenantCreated", id).length, 1);
});

test("the jobs process killed mid-provisioning: the job runs again, one admin, event delivered", async () => {
  const root = await h.login(webA.url, h.ADMIN_EMAIL, h.ADMIN_PASSWORD);
  const rootB = await h.connectHub(webB.url, root);
  hubs.push(rootB);
  await h.stopDiquis(jobs);

  let r = await h.api("POST", `${webA.url}/api/tenants`, root, h.newTenant("killed"));
  assert.equal(r.status, 202);
  // Hold the tenant row so the next jobs process blocks inside the job, then kill that process.
  const holder = spawn("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", db.name, "-qAt"], { stdio: ["pipe", "pipe", "inherit"] });
  const locked = new Promise((res) => holder.stdout.on("data", (d) => String(d).includes("killed") && res()));
  holder.stdin.write("BEGIN;\nSELECT id FROM tenants WHERE id = 'killed' FOR UPDATE;\n");
  await locked;
  jobs = await h.startDiquis("jobs", { db, redis });
  await h.until(() => h.psql("postgres", `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '${db.name}' AND wait_event_type = 'Lock'`) !== "0", "the job blocks mid-provisioning");
  jobs.kill("SIGKILL");
  await jobs.exited;
  holder.stdin.end("COMMIT;\n");
  await new Promise((res) => holder.once("exit", res));

  jobs = await h.startDiquis("jobs", { db, redis });
  await rootB.waitFor("TenantCreated", "killed");
  const tenant = await h.api("GET", `${webA.url}/api/tenants/killed`, root);
  assert.equal(tenant.body.data.status, "Active");
  assert.equal(h.psql(db.name, "SELECT COUNT(*) FROM users WHERE tenant_id = 'killed'"), "1");
  assert.equal(rootB.of("TenantCreated", "killed").length, 1);
});
