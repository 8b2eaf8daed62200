"use strict";
// The quick start (issue 6, "Processes"): `diquis` alone, with no configuration but its address,
// runs web and jobs in one process on an embedded SQLite file and the in-process backplane. The
// first start prints a generated root password once; it works, and a second start on the same
// file prints none and keeps it. A tenant created through the API is announced on the hub.

const { describe, test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { DiquisProcess } = require("../lib/diquis");
const api = require("../lib/api");
const { connectHub, stopAll } = require("../lib/hub");
const payloads = require("../lib/payloads");
const { randomSuffix } = require("../lib/wait");

const DEFAULT_EMAIL = "admin@diquis.local";

/** The password printed on the line after "generated password:". */
function printedPassword(lines) {
    const at = lines.findIndex((l) => /generated password/i.test(l));
    if (at < 0) return undefined;
    return lines.slice(at + 1).map((l) => l.trim()).find((l) => l.length > 0);
}

describe("diquis alone: SQLite and the in-process backplane, no services", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "diquis-e2e-single-"));
    let proc;
    const conns = [];

    after(async () => {
        await stopAll(conns);
        if (proc) await proc.stop();
        if (!process.env.E2E_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
    });

    test("first start prints a generated password once; sign in, create a tenant, get TenantCreated", { timeout: 180_000 }, async () => {
        proc = new DiquisProcess({
            name: "diquis",
            role: "",
            env: { Urls: "http://127.0.0.1:0" },
            workDir: dir,
            logFile: path.join(dir, "diquis.log"),
        });
        try {
            await proc.start();
            await proc.waitReady();
            const password = printedPassword(proc.lines);
            assert.ok(password && password.length >= 12, `a generated password is printed on first start:\n${proc.tail()}`);
            assert.ok(fs.existsSync(path.join(dir, "diquis.db")), "the embedded SQLite file diquis.db is created in the working directory");
            const token = await api.login(proc.url, DEFAULT_EMAIL, password, "root");
            conns.push(await connectHub(proc.url, token, "root@diquis"));

            const id = `solo-${randomSuffix(6)}`;
            await api.createTenant(proc.url, token, { id, name: "Solo Academy", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            const event = await conns[0].waitForEvent("TenantCreated", id, 60_000);
            payloads.assertTenantCreated(event.data, { userId: `${DEFAULT_EMAIL}.root`, tenantId: id, tenantName: "Solo Academy" });
            await api.waitForTenant(proc.url, token, id, (t) => t.status === "Active", "Active");

            // Second start on the same file: no new password, the first one still works.
            await stopAll(conns.splice(0));
            await proc.stop();
            proc.lines.length = 0;
            await proc.start();
            await proc.waitReady();
            assert.equal(printedPassword(proc.lines), undefined, `no password printed on the second start:\n${proc.tail()}`);
            const again = await api.login(proc.url, DEFAULT_EMAIL, password, "root");
            const row = await api.getTenant(proc.url, again, id);
            assert.equal(row.status, "Active", "the tenant is kept in the SQLite file");
        } catch (e) {
            e.message += `\n${proc.tail()}`;
            throw e;
        }
    });
});
