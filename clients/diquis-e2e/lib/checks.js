"use strict";
// Checks shared by the suites: a barrier that proves earlier events have been delivered, and the
// comparison of what each connection received with the notifications the app stored.

const assert = require("node:assert/strict");
const api = require("./api");
const { randomSuffix } = require("./wait");

/**
 * Creates a throw-away tenant through `base` and waits until every connection in `recorders`
 * received its TenantCreated. Events published before it travel the same channel in order, so
 * once the barrier arrived, a repeat of an earlier event would have arrived too.
 */
async function barrier(base, token, recorders, ms = 60_000) {
    const id = `barrier-${randomSuffix(8)}`;
    await api.createTenant(base, token, { id, name: `Barrier ${id}`, adminEmail: `admin@${id}.test`, password: "Barrier-Passw0rd!" });
    await Promise.all(recorders.map((r) => r.waitForEvent("TenantCreated", id, ms)));
    return id;
}

/**
 * Asserts that each connection received exactly the notifications the app stored about
 * `tenantId` (GET /api/notifications as root): every one once, none extra, identical payloads.
 */
async function assertMatchesStored(base, token, recorders, tenantId) {
    const stored = (await api.allNotifications(base, token, 0)).filter((n) => n.data && n.data.tenantId === tenantId);
    assert.ok(stored.length > 0, `the app stored notifications about ${tenantId}`);
    for (const n of stored) {
        assert.equal(n.data.id, n.id, "a stored notification's payload carries its id");
    }
    const expected = stored.map((n) => ({ target: n.event, data: n.data }));
    for (const r of recorders) {
        const got = r.events
            .filter((e) => e.data && e.data.tenantId === tenantId)
            .map((e) => ({ target: e.target, data: e.data }))
            .sort((a, b) => a.data.id - b.data.id);
        assert.deepEqual(got, expected, `${r.name}: the events received about ${tenantId} are exactly the stored ones, each once`);
    }
    return stored;
}

module.exports = { barrier, assertMatchesStored };
