"use strict";
// Nothing user-written runs as script (issue 14, point 3): a tenant named like an HTML payload
// shows literally in the toasts of TenantCreated and TenantUpdated on the live tenant page and
// on /seed-demo (the seed document's script, unchanged), no script of it runs, and every page
// carries a Content-Security-Policy without 'unsafe-inline' for scripts. One `diquis` process
// (web and jobs) on SQLite; Debian's chromium through playwright-core.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { DiquisProcess } = require("../lib/diquis");
const api = require("../lib/api");
const { launchBrowser } = require("../lib/chromium");
const { randomSuffix } = require("../lib/wait");

const EMAIL = "admin@xss.test";
const PASSWORD = "Xss-Root-Passw0rd!";
const UI_WAIT_MS = 60_000;
// Each payload, if it ever became HTML, would run script: an alert (a dialog the test counts)
// and a global the test reads.
const PAYLOAD = "<img src=x onerror=alert(1)>";
const PAYLOAD_FLAG = "<img src=x onerror=\"window.__xssRan=true\">";

/** Asserts the response of a page carries the headers of point 3. */
function assertHeaders(response, what) {
    const h = response.headers();
    const csp = h["content-security-policy"];
    assert.ok(csp, `${what}: a Content-Security-Policy header`);
    const scripts = csp.split(";").map((d) => d.trim()).find((d) => d.startsWith("script-src"));
    assert.ok(scripts && !scripts.includes("'unsafe-inline'"), `${what}: script-src without 'unsafe-inline': ${csp}`);
    assert.match(csp, /frame-ancestors 'none'/, what);
    assert.equal(h["x-content-type-options"], "nosniff", what);
    assert.ok(h["referrer-policy"], `${what}: a Referrer-Policy`);
}

/** Signs `browser` in through the login form, going on to `returnUrl`; resolves with that page's response. */
async function signIn(browser, base, returnUrl) {
    const { page } = browser;
    await page.goto(`${base}/login?returnUrl=${encodeURIComponent(returnUrl)}`);
    await page.fill("#email", EMAIL);
    await page.fill("#password", PASSWORD);
    await page.fill("#tenant", "root");
    const [response] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === returnUrl && r.request().resourceType() === "document", { timeout: UI_WAIT_MS }),
        page.click("#sign-in"),
    ]);
    await page.waitForURL(`${base}${returnUrl}`, { timeout: UI_WAIT_MS });
    return response;
}

/** Counts dialogs (alert, confirm) a page opens, dismissing them. */
function countDialogs(browser) {
    browser.dialogs = [];
    browser.page.on("dialog", (d) => {
        browser.dialogs.push(d.message());
        d.dismiss().catch(() => {});
    });
}

function assertNothingRan(browser) {
    assert.deepEqual(browser.dialogs, [], `${browser.name}: no dialog opened`);
    const blocked = browser.console.filter((l) => /Content Security Policy/i.test(l));
    assert.deepEqual(blocked, [], `${browser.name}: the page's own scripts are not blocked by the policy`);
    const errors = browser.console.filter((l) => l.startsWith("pageerror:"));
    assert.deepEqual(errors, [], `${browser.name}: no script errors`);
}

describe("no user-written text runs as script", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "diquis-e2e-xss-"));
    let proc;
    let token;
    const browsers = [];

    before(async () => {
        proc = new DiquisProcess({
            name: "diquis",
            role: "",
            env: {
                Urls: "http://127.0.0.1:0",
                ConnectionStrings__DefaultConnection: path.join(dir, "diquis.db"),
                Seed__AdminEmail: EMAIL,
                Seed__AdminPassword: PASSWORD,
            },
            workDir: dir,
            logFile: path.join(dir, "diquis.log"),
        });
        await proc.start();
        await proc.waitReady();
        token = await api.login(proc.url, EMAIL, PASSWORD);
    });

    after(async () => {
        for (const b of browsers) await b.close();
        if (proc) await proc.stop();
        if (!process.env.E2E_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
    });

    test("/tenants: the TenantCreated and TenantUpdated toasts show the name as text", { timeout: 180_000 }, async () => {
        const browser = await launchBrowser("tenants");
        browsers.push(browser);
        countDialogs(browser);
        const response = await signIn(browser, proc.url, "/tenants");
        assertHeaders(response, "/tenants");
        await browser.page.waitForFunction(() => window.diquisConnected === true, null, { timeout: UI_WAIT_MS });

        const id = `xss-${randomSuffix(6)}`;
        await api.createTenant(proc.url, token, { id, name: PAYLOAD, adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
        const created = `Tenant '${PAYLOAD}' has been created successfully!`;
        const toast = browser.page.locator("#toast-container .toast-message", { hasText: created });
        await toast.first().waitFor({ state: "visible", timeout: UI_WAIT_MS });
        assert.equal(await toast.first().textContent(), created, "the toast shows the name literally");
        assert.equal(await browser.page.locator("#toast-container img").count(), 0, "no element was made from the name");
        // The row (rendered by the server) shows it literally too.
        const row = browser.page.locator(`#tenant-${id}[data-status="Active"] td.name`);
        await row.waitFor({ state: "attached", timeout: UI_WAIT_MS });
        assert.equal(await row.textContent(), PAYLOAD);

        await api.updateTenant(proc.url, token, id, { name: PAYLOAD_FLAG, isActive: true });
        const updated = `Tenant '${PAYLOAD_FLAG}' has been updated successfully!`;
        const toast2 = browser.page.locator("#toast-container .toast-message", { hasText: updated });
        await toast2.first().waitFor({ state: "visible", timeout: UI_WAIT_MS });
        assert.equal(await toast2.first().textContent(), updated);
        await browser.page.locator(`#tenant-${id}[data-status="Active"] td.name`, { hasText: PAYLOAD_FLAG }).waitFor({ state: "attached", timeout: UI_WAIT_MS });
        assert.equal(await browser.page.locator("main img, #toast-container img").count(), 0);
        assert.equal(await browser.page.evaluate(() => window.__xssRan === true), false, "the payload's handler never ran");
        assertNothingRan(browser);
    });

    test("/seed-demo: the seed document's script runs under the policy and its toasts escape", { timeout: 180_000 }, async () => {
        const browser = await launchBrowser("seed");
        browsers.push(browser);
        countDialogs(browser);
        const response = await signIn(browser, proc.url, "/seed-demo");
        assertHeaders(response, "/seed-demo");
        // The inline seed script ran (allowed by its hash): its `connection` is connected.
        await browser.page.waitForFunction(() => typeof connection !== "undefined" && connection.state === "Connected", null, { timeout: UI_WAIT_MS });
        // The script reloads the page right after its toast: keep what the toast became.
        await browser.page.evaluate(() => {
            const original = window.toastr.success.bind(window.toastr);
            window.toastr.success = (message, ...rest) => {
                const shown = original(message, ...rest);
                const body = shown.find(".toast-message");
                sessionStorage.setItem("e2e-toast-text", body.text());
                sessionStorage.setItem("e2e-toast-images", String(shown.find("img").length));
                return shown;
            };
        });
        const logged = browser.page.waitForEvent("console", { predicate: (m) => m.text().includes("Tenant created:"), timeout: UI_WAIT_MS });
        const reloaded = browser.page.waitForEvent("load", { timeout: UI_WAIT_MS });
        const id = `seedxss-${randomSuffix(6)}`;
        await api.createTenant(proc.url, token, { id, name: PAYLOAD_FLAG, adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
        await logged;
        await reloaded;
        const text = await browser.page.evaluate(() => sessionStorage.getItem("e2e-toast-text"));
        assert.equal(text, `Tenant "${PAYLOAD_FLAG}" created successfully!`, "the seed script's toast shows the name literally");
        assert.equal(await browser.page.evaluate(() => sessionStorage.getItem("e2e-toast-images")), "0", "no element was made from the name");
        // After its reload the page lists the tenant, literally, and is live again.
        const row = browser.page.locator(`#tenant-${id}[data-status="Active"] td.name`);
        await row.waitFor({ state: "attached", timeout: UI_WAIT_MS });
        assert.equal(await row.textContent(), PAYLOAD_FLAG);
        await browser.page.waitForFunction(() => typeof connection !== "undefined" && connection.state === "Connected", null, { timeout: UI_WAIT_MS });

        // An update toast stays on the page until the reload: nothing of it runs either.
        const reloadedAgain = browser.page.waitForEvent("load", { timeout: UI_WAIT_MS });
        await api.updateTenant(proc.url, token, id, { name: PAYLOAD, isActive: true });
        await reloadedAgain;
        await browser.page.locator(`#tenant-${id}[data-status="Active"] td.name`, { hasText: PAYLOAD }).waitFor({ state: "attached", timeout: UI_WAIT_MS });
        assert.equal(await browser.page.evaluate(() => window.__xssRan === true), false, "the payload's handler never ran");
        assertNothingRan(browser);
    });

    test("the jobs dashboard and the API send the headers too", { timeout: 60_000 }, async () => {
        for (const p of ["/jobs", "/api/tenants", "/health/ready", "/js/diquis.js"]) {
            const r = await fetch(`${proc.url}${p}`, { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
            assert.equal(r.status, 200, p);
            const csp = r.headers.get("content-security-policy");
            assert.ok(csp && /frame-ancestors 'none'/.test(csp), `${p}: ${csp}`);
            assert.equal(r.headers.get("x-content-type-options"), "nosniff", p);
            assert.equal(r.headers.get("x-frame-options"), "DENY", p);
        }
    });
});
