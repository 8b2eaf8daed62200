"use strict";
// The page after an action shows that action's events, however fast the job was: in one process
// (SQLite, in-process backplane) an edit's job can finish before the next page has connected,
// and the page then catches up from the last notification id its tab knew.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { DiquisProcess } = require("../lib/diquis");
const api = require("../lib/api");
const { launchBrowser } = require("../lib/chromium");
const { randomSuffix } = require("../lib/wait");

const EMAIL = "admin@diquis.local";
const PASSWORD = "Catch-Up-Passw0rd!";
const UI_WAIT_MS = 60_000;

describe("browser, one process: the page after a form post shows that post's event", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "diquis-e2e-catch-up-"));
    let proc;
    let browser;

    before(async () => {
        proc = new DiquisProcess({
            name: "diquis",
            role: "",
            env: { Urls: "http://127.0.0.1:0", Seed__AdminEmail: EMAIL, Seed__AdminPassword: PASSWORD },
            workDir: dir,
            logFile: path.join(dir, "diquis.log"),
        });
        await proc.start();
        await proc.waitReady();
        browser = await launchBrowser("catch-up");
    });

    after(async () => {
        if (browser) await browser.close();
        if (proc) await proc.stop();
        if (!process.env.E2E_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
    });

    test("edit a tenant with the form: the TenantUpdated toast shows on the next page", { timeout: 180_000 }, async () => {
        try {
            const base = proc.url;
            const token = await api.login(base, EMAIL, PASSWORD, "root");
            const id = `fast-${randomSuffix(6)}`;
            await api.createTenant(base, token, { id, name: "Fast FC", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await api.waitForTenant(base, token, id, (t) => t.status === "Active", "Active");

            const { page } = browser;
            await page.goto(`${base}/login`);
            await page.fill("#email", EMAIL);
            await page.fill("#password", PASSWORD);
            await page.fill("#tenant", "root");
            await Promise.all([page.waitForURL(`${base}/tenants`, { timeout: UI_WAIT_MS }), page.click("#sign-in")]);
            await page.waitForFunction(() => window.diquisConnected === true, null, { timeout: UI_WAIT_MS });
            // The tenant's creation happened before this tab's first page: no toast for it.
            assert.equal(await page.locator("#toast-container .toast", { hasText: "Fast FC" }).count(), 0);

            const newName = `Quickly Edited ${id}`;
            await Promise.all([page.waitForURL(`${base}/tenants/${id}/edit`, { timeout: UI_WAIT_MS }), page.click(`#tenant-${id} a:has-text("Edit")`)]);
            await page.fill("#name", newName);
            await Promise.all([page.waitForURL(`${base}/tenants`, { timeout: UI_WAIT_MS }), page.click("#save-tenant")]);
            const toast = page.locator("#toast-container .toast", { hasText: `Tenant '${newName}' has been updated successfully!` });
            await toast.first().waitFor({ state: "visible", timeout: UI_WAIT_MS });
            assert.match(await toast.first().getAttribute("class"), /toast-success/);
            await page.locator(`#tenant-${id}[data-status="Active"]`).waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.equal(await toast.count(), 1, "one toast for the event (live and catch-up do not both show it)");
        } catch (e) {
            e.message += `\n--- console ---\n${browser.console.slice(-30).join("\n")}\n${proc.tail()}`;
            throw e;
        }
    });
});
