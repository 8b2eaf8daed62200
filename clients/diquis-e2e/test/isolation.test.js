"use strict";
// Isolation (issue 6, "Tests"): a user of another tenant, connected at the same time as root,
// receives none of the tenant events; and the hub refuses connections with no token, a bad
// token or an expired token (negotiate answers 401, the official client's start() fails).

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");

const { Cluster, ROOT_USER_NAME, signJwt, jwtClaims } = require("../lib/diquis");
const api = require("../lib/api");
const { connectHub, stopAll, negotiateStatus, websocketUpgradeStatus, expectRefused, TENANT_EVENTS } = require("../lib/hub");
const { barrier, assertMatchesStored } = require("../lib/checks");
const payloads = require("../lib/payloads");
const pg = require("../lib/postgres");
const { randomSuffix } = require("../lib/wait");

const TEST_TIMEOUT = 240_000;

describe("isolation: tenant events reach root, never another tenant's users; the hub needs a valid token", () => {
    let cluster;
    let token;
    const roots = [];
    const outsiders = [];
    let other;

    before(async () => {
        cluster = await Cluster.start({ label: "isolation" });
        token = cluster.rootToken;
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            // Another tenant, provisioned through the app: its administrator is a real user of it.
            other = { id: `other-${randomSuffix(6)}`, email: "owner@other-academy.test", password: "Other-Owner-Passw0rd!" };
            await api.createTenant(web1.url, token, { id: other.id, name: "Other Academy", adminEmail: other.email, password: other.password });
            await api.waitForTenant(web1.url, token, other.id, (t) => t.status === "Active", "Active", 60_000);
            other.token = await api.login(web2.url, other.email, other.password, other.id);
            roots.push(await connectHub(web1.url, token, "root@web1"), await connectHub(web2.url, token, "root@web2"));
            // The outsider on every node, including the jobs process's hub.
            outsiders.push(
                await connectHub(web1.url, other.token, `${other.id}-admin@web1`),
                await connectHub(web2.url, other.token, `${other.id}-admin@web2`),
                await connectHub(cluster.jobs.url, other.token, `${other.id}-admin@jobs`),
            );
        });
    });

    after(async () => {
        await stopAll([...roots, ...outsiders]);
        if (cluster) await cluster.stop();
    });

    test("another tenant's admin, connected on every node, gets none of root's tenant events", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            const id = `secret-${randomSuffix(6)}`;
            const failId = `secret-fail-${randomSuffix(6)}`;
            await api.createTenant(web1.url, token, { id, name: "Secret Academy", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await Promise.all(roots.map((c) => c.waitForEvent("TenantCreated", id, 60_000)));
            await api.waitForTenant(web1.url, token, id, (t) => t.status === "Active", "Active");
            await api.updateTenant(web2.url, token, id, { name: "Secret Academy Renamed", isActive: true });
            await Promise.all(roots.map((c) => c.waitForEvent("TenantUpdated", id, 60_000)));

            // A failure event too: a leftover database that refuses rows makes provisioning fail.
            const failDb = `${cluster.database}-${failId}`;
            await pg.query("postgres", `CREATE DATABASE ${pg.ident(failDb)}`);
            await pg.query(failDb, "CREATE TABLE tenant_metadata (tenant_id TEXT PRIMARY KEY, provisioned_on TIMESTAMPTZ NOT NULL, CONSTRAINT e2e_refuse_rows CHECK (false))");
            await api.createTenant(web1.url, token, { id: failId, name: "Secret Failure", adminEmail: `owner@${failId}.test`, password: "Owner-Passw0rd!", hasIsolatedDatabase: true });
            await Promise.all(roots.map((c) => c.waitForEvent("TenantCreationFailed", failId, 60_000)));

            // Everything above was published before the barrier on the same channels.
            await barrier(web2.url, token, roots);
            for (const c of roots) {
                payloads.assertTenantCreated(c.assertExactlyOnce("TenantCreated", id), { userId: ROOT_USER_NAME, tenantId: id, tenantName: "Secret Academy" });
                payloads.assertTenantUpdated(c.assertExactlyOnce("TenantUpdated", id), { userId: ROOT_USER_NAME, tenantId: id, tenantName: "Secret Academy Renamed" });
            }
            await assertMatchesStored(web1.url, token, roots, id);
            for (const o of outsiders) {
                assert.deepEqual(
                    o.events.map((e) => `${e.target} ${e.data && e.data.tenantId}`),
                    [],
                    `${o.name} must receive no tenant event of other tenants`,
                );
                o.assertStillConnected();
            }
            // The catch-up API shows the outsider nothing of it either, and the tenant API is closed.
            const missed = await api.missedNotifications(web2.url, other.token, 0);
            assert.deepEqual(missed, [], "GET /api/notifications shows another tenant's user nothing");
            const list = await api.request(web1.url, "GET", "/api/tenants", { token: other.token });
            assert.equal(list.status, 403, `GET /api/tenants as ${other.id}'s admin: ${api.describe(list)}`);
            const create = await api.request(web1.url, "POST", "/api/tenants", {
                token: other.token,
                body: { id: `intruder-${randomSuffix(4)}`, name: "Intruder", adminEmail: "x@intruder.test", password: "Intruder-Passw0rd!" },
            });
            assert.equal(create.status, 403, `POST /api/tenants as ${other.id}'s admin: ${api.describe(create)}`);
            assert.ok(TENANT_EVENTS.length === 4);
        });
    });

    test("no token, a bad token and an expired token cannot connect to the hub on any node", { timeout: TEST_TIMEOUT }, async () => {
        await cluster.withLogs(async () => {
            const claims = jwtClaims(token);
            const now = Math.floor(Date.now() / 1000);
            const expired = signJwt({ ...claims, iat: now - 7200, exp: now - 3600 }, cluster.jwtKey);
            const forged = signJwt({ ...claims, iat: now, exp: now + 3600 }, "not-the-server-key-0123456789abcdef");
            const [head, body] = token.split(".");
            const tampered = `${head}.${Buffer.from(JSON.stringify({ ...claims, tenant: "root", roles: ["root"], sub: "someone.else.root" })).toString("base64url")}.${token.split(".")[2]}`;
            const bad = {
                "no token": undefined,
                "a malformed token": "not-a-jwt",
                "a token signed with another key": forged,
                "a token whose claims were altered": tampered,
                "an expired token (signed with the server's key)": expired,
            };
            // Control: the same crafting with a future expiry is accepted, so the refusals above
            // are about the token's defect, not about how the test made it.
            const fresh = signJwt({ ...claims, iat: now, exp: now + 3600 }, cluster.jwtKey);
            assert.ok(body.length > 0);
            for (const node of [...cluster.web, cluster.jobs]) {
                const control = await connectHub(node.url, fresh, `control@${node.name}`);
                assert.equal(await websocketUpgradeStatus(node.url, fresh), 101, `${node.name}: WebSocket upgrade with a valid token`);
                await control.connection.stop();
                for (const [what, bearer] of Object.entries(bad)) {
                    assert.equal(await negotiateStatus(node.url, { bearer }), 401, `${node.name}: negotiate with ${what} (Bearer)`);
                    if (bearer !== undefined) {
                        assert.equal(await negotiateStatus(node.url, { accessTokenQuery: bearer }), 401, `${node.name}: negotiate with ${what} (access_token)`);
                    }
                    // The official client reports "Failed to complete negotiation with the server:
                    // Error: Unauthorized: Status code '401'".
                    const error = await expectRefused(node.url, bearer, `${node.name}: official client with ${what}`);
                    assert.match(String(error), /Status code '401'/, `${node.name}: ${what}: start() failed with ${error}`);
                    // Skipping negotiation does not get around it: the WebSocket upgrade is refused.
                    const wsError = await expectRefused(node.url, bearer, `${node.name}: official client with ${what}, skipNegotiation`, { skipNegotiation: true });
                    assert.match(String(wsError), /WebSocket failed to connect/, `${node.name}: ${what}, skipNegotiation: start() failed with ${wsError}`);
                    assert.equal(await websocketUpgradeStatus(node.url, bearer), 401, `${node.name}: WebSocket upgrade with ${what}`);
                }
            }
        });
    });
});
