"use strict";
// The payloads of the four tenant events: the .NET jobs process's fields (redis-backplane-wire.md
// §10.5: type, message, userId, tenantId, tenantName or error, timestamp) plus the outbox `id`.

const assert = require("node:assert/strict");

/** `DateTime.UtcNow.ToString("o")`: seven fractional digits and `Z`. */
const DOTNET_ROUND_TRIP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/;

function common(data, { type, userId, tenantId }) {
    assert.equal(typeof data, "object", "the payload is one object argument");
    assert.equal(data.type, type, "type");
    assert.equal(data.userId, userId, "userId is the requesting user's name");
    assert.equal(data.tenantId, tenantId, "tenantId");
    assert.equal(typeof data.timestamp, "string", "timestamp is a string");
    assert.match(data.timestamp, DOTNET_ROUND_TRIP, "timestamp in .NET round-trip format");
    const age = Date.now() - Date.parse(data.timestamp);
    assert.ok(age > -60_000 && age < 3_600_000, `timestamp ${data.timestamp} is a recent UTC time`);
    assert.ok(Number.isSafeInteger(data.id) && data.id > 0, `id is a positive integer (got ${data.id})`);
}

/** Checks a TenantCreated payload. */
function assertTenantCreated(data, { userId, tenantId, tenantName }) {
    common(data, { type: "success", userId, tenantId });
    assert.equal(data.tenantName, tenantName, "tenantName");
    assert.equal(data.message, `Tenant '${tenantName}' has been created successfully!`, "message");
}

/** Checks a TenantUpdated payload. */
function assertTenantUpdated(data, { userId, tenantId, tenantName }) {
    common(data, { type: "success", userId, tenantId });
    assert.equal(data.tenantName, tenantName, "tenantName");
    assert.equal(data.message, `Tenant '${tenantName}' has been updated successfully!`, "message");
}

/** Checks a TenantCreationFailed payload; `errorIncludes` must be part of `error`. */
function assertTenantCreationFailed(data, { userId, tenantId, errorIncludes }) {
    common(data, { type: "error", userId, tenantId });
    assert.equal(typeof data.error, "string", "error");
    assert.ok(data.error.includes(errorIncludes), `error ${JSON.stringify(data.error)} names ${JSON.stringify(errorIncludes)}`);
    assert.equal(data.message, `Failed to create tenant: ${data.error}`, "message");
}

/** Checks a TenantUpdateFailed payload. */
function assertTenantUpdateFailed(data, { userId, tenantId, errorIncludes }) {
    common(data, { type: "error", userId, tenantId });
    assert.equal(typeof data.error, "string", "error");
    assert.ok(data.error.includes(errorIncludes), `error ${JSON.stringify(data.error)} names ${JSON.stringify(errorIncludes)}`);
    assert.equal(data.message, `Failed to update tenant: ${data.error}`, "message");
}

module.exports = { assertTenantCreated, assertTenantUpdated, assertTenantCreationFailed, assertTenantUpdateFailed, DOTNET_ROUND_TRIP };
