"use strict";
// The Diquis REST API as a client sees it: sign-in for a JWT, tenants, missed notifications.
// Every answer is Diquis's `{ succeeded, messages, data }` envelope.

const assert = require("node:assert/strict");
const { until } = require("./wait");

/** Sends a request; resolves with { status, body } (body parsed when it is JSON). */
async function request(base, method, path, { token, body } = {}) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const r = await fetch(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: "manual",
    });
    const text = await r.text();
    let parsed = text;
    try {
        parsed = JSON.parse(text);
    } catch {
        // not JSON; keep the text
    }
    return { status: r.status, body: parsed };
}

function describe(r) {
    return `${r.status} ${typeof r.body === "string" ? r.body : JSON.stringify(r.body)}`;
}

/** `POST /api/tokens`; resolves with the access token. */
async function login(base, email, password, tenant = "root") {
    const r = await request(base, "POST", "/api/tokens", { body: { email, password, tenant } });
    assert.equal(r.status, 200, `sign-in of ${email} (tenant ${tenant}) at ${base}: ${describe(r)}`);
    assert.equal(r.body.succeeded, true);
    assert.equal(typeof r.body.data.token, "string");
    return r.body.data.token;
}

/** `POST /api/tenants`; asserts 202 and the tenant id in the envelope. */
async function createTenant(base, token, tenant) {
    const body = { hasIsolatedDatabase: false, ...tenant };
    const r = await request(base, "POST", "/api/tenants", { token, body });
    assert.equal(r.status, 202, `create tenant ${tenant.id} at ${base}: ${describe(r)}`);
    assert.equal(r.body.succeeded, true, describe(r));
    assert.equal(r.body.data, tenant.id, describe(r));
    return r.body;
}

/** `PUT /api/tenants/{id}`; asserts 202. */
async function updateTenant(base, token, id, edit) {
    const r = await request(base, "PUT", `/api/tenants/${encodeURIComponent(id)}`, { token, body: edit });
    assert.equal(r.status, 202, `update tenant ${id} at ${base}: ${describe(r)}`);
    assert.equal(r.body.succeeded, true, describe(r));
    return r.body;
}

/** `GET /api/tenants/{id}`; resolves with the tenant (or undefined on 404). */
async function getTenant(base, token, id) {
    const r = await request(base, "GET", `/api/tenants/${encodeURIComponent(id)}`, { token });
    if (r.status === 404) return undefined;
    assert.equal(r.status, 200, `get tenant ${id}: ${describe(r)}`);
    return r.body.data;
}

/** Polls the tenant until `predicate(tenant)` holds; resolves with it. */
async function waitForTenant(base, token, id, predicate, what, ms = 60_000) {
    let last;
    return until(
        async () => {
            last = await getTenant(base, token, id);
            return last && predicate(last) ? last : undefined;
        },
        `tenant ${id} to be ${what} (last seen: ${JSON.stringify(last)})`,
        { ms, every: 100 },
    );
}

/** `GET /api/notifications?after=`; resolves with the list. */
async function missedNotifications(base, token, after = 0) {
    const r = await request(base, "GET", `/api/notifications?after=${after}`, { token });
    assert.equal(r.status, 200, `missed notifications: ${describe(r)}`);
    assert.equal(r.body.succeeded, true);
    return r.body.data;
}

/** Every notification after `after`, reading page after page (the API answers at most 200 a call). */
async function allNotifications(base, token, after = 0) {
    const all = [];
    for (let cursor = after; ;) {
        const page = await missedNotifications(base, token, cursor);
        if (page.length === 0) return all;
        all.push(...page);
        cursor = page[page.length - 1].id;
    }
}

module.exports = { request, login, createTenant, updateTenant, getTenant, waitForTenant, missedNotifications, allNotifications, describe };
