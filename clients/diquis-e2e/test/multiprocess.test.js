// Two `diquis web` nodes and one `diquis jobs` on PostgreSQL and a real redis-server; official
// clients signed in as root on each node and a user of another tenant. Each root connection gets
// each event once with the .NET payload; the other tenant's user gets none; bad tokens are refused.
"use strict";

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

test("every root connection on every web node gets each event once; other tenants get none", async () => {
  const root = await h.login(webA.url, h.ADMIN_EMAIL, h.ADMIN_PASSWORD);
  let r = await h.api("POST", `${webA.url}/api/tenants`, root, h.newTenant("other"));
  assert.equal(r.status, 202);
  await h.waitActive(webA.url, root, "other");
  const otherToken = await h.login(webB.url, "owner@other.test", "Owner1Passw0rd", "other");

  const rootA = await h.connectHub(webA.url, root);
  const rootB = await h.connectHub(webB.url, root);
  const rootB2 = await h.connectHub(webB.url, root);
  const otherB = await h.connectHub(webB.url, otherToken);
  hubs.push(rootA, rootB, rootB2, otherB);
  assert.deepEqual(rootA.connectedMessages, ["Successfully connected to notification hub"]);

  r = await h.api("POST", `${webB.url}/api/tenants`, root, h.newTenant("alpha", true));
  assert.equal(r.status, 202, JSON.stringify(r.body));
  for (const c of [rootA, rootB, rootB2]) await c.waitFor("TenantCreated", "alpha");
  r = await h.api("PUT", `${webA.url}/api/tenants/alpha`, root, { name: "Alpha FC", isActive: true });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  for (const c of [rootA, rootB, rootB2]) await c.waitFor("TenantUpdated", "alpha");

  for (const c of [rootA, rootB, rootB2]) {
    assert.equal(c.of("TenantCreated", "alpha").length, 1);
    assert.equal(c.of("TenantUpdated", "alpha").length, 1);
    const created = c.of("TenantCreated", "alpha")[0].data;
    assert.equal(created.type, "success");
    assert.equal(created.message, "Tenant 'Academy alpha' has been created successfully!");
    assert.equal(created.userId, `${h.ADMIN_EMAIL}.root`);
    assert.equal(created.tenantName, "Academy alpha");
    assert.match(created.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);
    assert.equal(typeof created.id, "number");
    assert.equal(c.of("TenantUpdated", "alpha")[0].data.message, "Tenant 'Alpha FC' has been updated successfully!");
  }
  // The same notification has the same id everywhere.
  assert.equal(rootA.of("TenantCreated", "alpha")[0].data.id, rootB.of("TenantCreated", "alpha")[0].data.id);
  // rootB and otherB share web node B; rootB has both events, otherB none.
  assert.deepEqual(otherB.events, []);
  const missed = await h.api("GET", `${webB.url}/api/notifications?after=0`, otherToken);
  assert.deepEqual(missed.body.data, []);
});

test("no token, a bad token or an expired token cannot connect", async () => {
  for (const token of [undefined, "not-a-token", h.signJwt({ sub: `${h.ADMIN_EMAIL}.root`, uid: "x", email: h.ADMIN_EMAIL, tenant: "root", roles: ["root"], jti: "j", iss: "Diquis", aud: "Diquis", iat: 1, exp: Math.floor(Date.now() / 1000) - 60 })]) {
    const connection = new h.signalR.HubConnectionBuilder()
      .withUrl(`${webA.url}/hubs/notifications`, token ? { accessTokenFactory: () => token } : {})
      .configureLogging(h.signalR.LogLevel.None)
      .build();
    await assert.rejects(connection.start(), (e) => /401|Unauthorized/.test(String(e)), `token ${token}`);
  }
});
