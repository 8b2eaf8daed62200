"use strict";
// User management in Chromium (issue 17, "No user management"), on a production `diquis web`
// node (PostgreSQL, Redis, a separate `diquis jobs`):
//
// * root opens a tenant's Users page from its row, adds a user with a role (who can then sign
//   in), disables it (it no longer can), removes it (gone from the list);
// * the tenant's owner finds Users in the header, changes their own password on
//   /account/password and signs in with the new one (the old one is refused);
// * `diquis users reset-password EMAIL --tenant T` (the binary, with the servers' configuration)
//   prints a one-time link; followed in the browser it sets a new password that signs in, and the
//   same link refuses a second use.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFile } = require("node:child_process");

const { Cluster, diquisBinary, ROOT_EMAIL, ROOT_PASSWORD } = require("../lib/diquis");
const api = require("../lib/api");
const { launchBrowser } = require("../lib/chromium");
const { randomSuffix } = require("../lib/wait");
const { UI_WAIT_MS, signIn, clickAndLoad, withBrowserLogs: withUiLogs } = require("../lib/ui");

const TEST_TIMEOUT = 240_000;
const OWNER_PASSWORD = "Owner-Passw0rd!";

/** `POST /api/tokens` for a user; resolves with the HTTP status. */
async function signInStatus(base, email, password, tenant) {
    const r = await api.request(base, "POST", "/api/tokens", { body: { email, password, tenant } });
    return r.status;
}

/** Runs the diquis binary with `args` and the cluster's configuration; resolves with { code, stdout, stderr }. */
function runDiquis(cluster, args) {
    return new Promise((resolve) => {
        const env = { ...process.env, ...cluster.env, NO_COLOR: "1" };
        execFile(diquisBinary(), args, { env, cwd: cluster.dir, timeout: 60_000 }, (error, stdout, stderr) => {
            resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
        });
    });
}

describe("browser: users of a tenant, own password, reset link", () => {
    let cluster;
    let base;
    let tenant;
    let owner;
    const browsers = [];

    before(async () => {
        cluster = await Cluster.start({ webNodes: 1, label: "users" });
        base = cluster.web[0].url;
        tenant = `club-${randomSuffix(6)}`;
        owner = `owner@${tenant}.test`;
        await cluster.withLogs(async () => {
            await api.createTenant(base, cluster.rootToken, { id: tenant, name: "Club FC", adminEmail: owner, password: OWNER_PASSWORD });
            await api.waitForTenant(base, cluster.rootToken, tenant, (t) => t.status === "Active", "Active");
        });
    });

    after(async () => {
        for (const b of browsers) await b.close();
        if (cluster) await cluster.stop();
    });

    async function browserNamed(name) {
        const b = await launchBrowser(name);
        browsers.push(b);
        return b;
    }

    const withBrowserLogs = (fn) => withUiLogs(cluster, () => browsers, fn);

    test("root: a tenant's Users page; add a user with a role, disable it, remove it", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const root = await browserNamed("root");
            const { page } = root;
            await signIn(root, base, { email: ROOT_EMAIL, password: ROOT_PASSWORD });
            await clickAndLoad(page, `#tenant-${tenant} a:has-text("Users")`);
            assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, `/users?tenant=${tenant}`);
            await page.locator(`#user-rows tr[data-email="${owner}"]`).waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.match(await page.locator(`#user-rows tr[data-email="${owner}"]`).innerText(), /academy_owner/);

            const coach = `coach@${tenant}.test`;
            await page.fill("#email", coach);
            await page.fill("#password", "Coach-Passw0rd!");
            await page.selectOption("#role", "coach");
            await clickAndLoad(page, "#add-user-button");
            const row = page.locator(`#user-rows tr[data-email="${coach}"]`);
            await row.waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.match(await row.innerText(), /coach/);
            assert.equal(await row.getAttribute("data-active"), "true");
            assert.equal(await signInStatus(base, coach, "Coach-Passw0rd!", tenant), 200, "the new user signs in");

            await clickAndLoad(page, `#user-rows tr[data-email="${coach}"] button:has-text("Disable")`);
            await page.locator(`#user-rows tr[data-email="${coach}"][data-active="false"]`).waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.equal(await signInStatus(base, coach, "Coach-Passw0rd!", tenant), 401, "a disabled user cannot sign in");
            assert.ok(await page.locator(`#user-rows tr[data-email="${coach}"] button:has-text("Enable")`).isVisible());

            await clickAndLoad(page, `#user-rows tr[data-email="${coach}"] button:has-text("Remove")`);
            await page.locator(`#user-rows tr[data-email="${owner}"]`).waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.equal(await page.locator(`#user-rows tr[data-email="${coach}"]`).count(), 0, "the removed user is gone");
        });
    });

    test("the owner: Users in the header; change own password, sign in with the new one", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const b = await browserNamed("owner");
            const { page } = b;
            await signIn(b, base, { email: owner, password: OWNER_PASSWORD, tenant, landing: "/" });
            await clickAndLoad(page, "#users-link");
            assert.match(await page.locator("h1").innerText(), new RegExp(`Users of ${tenant}`));

            await clickAndLoad(page, 'header.top a:has-text("Password")');
            await page.fill("#password", OWNER_PASSWORD);
            await page.fill("#newPassword", "Changed-Passw0rd!");
            await clickAndLoad(page, "#change-password");
            await page.locator("#password-changed").waitFor({ state: "visible", timeout: UI_WAIT_MS });

            await clickAndLoad(page, 'header.top button:has-text("Sign out")');
            assert.equal(await signInStatus(base, owner, OWNER_PASSWORD, tenant), 401, "the old password is refused");
            await signIn(b, base, { email: owner, password: "Changed-Passw0rd!", tenant, landing: "/" });
            assert.match(await page.locator("main").innerText(), new RegExp(`signed in as ${owner.replace(/[.]/g, "\\.")}`));
        });
    });

    test("diquis users reset-password prints a one-time link; it sets a new password once", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const run = await runDiquis(cluster, ["users", "reset-password", owner, "--tenant", tenant, "--url", base]);
            assert.equal(run.code, 0, `reset-password exits 0: ${run.stderr}`);
            const link = run.stdout.trim();
            assert.match(link, new RegExp(`^${base.replace(/[.:/]/g, "\\$&")}/reset-password\\?token=\\S+$`), `a link: ${run.stdout}`);

            const b = await browserNamed("reset");
            const { page } = b;
            await page.goto(link);
            await page.fill("#newPassword", "Reset-Passw0rd!");
            await Promise.all([page.waitForURL(`${base}/login`, { timeout: UI_WAIT_MS }), page.click("#reset-password")]);
            await signIn(b, base, { email: owner, password: "Reset-Passw0rd!", tenant, landing: "/" });
            assert.equal(await signInStatus(base, owner, "Changed-Passw0rd!", tenant), 401, "the password before the reset is refused");

            const again = await page.goto(link);
            assert.equal(again.status(), 404);
            assert.match(await page.locator("main").innerText(), /invalid, already used or expired/);
            assert.equal(await page.locator("#newPassword").count(), 0, "no form on a used link");

            const unknown = await runDiquis(cluster, ["users", "reset-password", `nobody@${tenant}.test`, "--tenant", tenant]);
            assert.equal(unknown.code, 1);
            assert.match(unknown.stderr, /no user/);
        });
    });
});
