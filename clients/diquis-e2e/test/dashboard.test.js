"use strict";
// The jobs dashboard (issue 19) in Debian's chromium through playwright-core, on two web nodes
// and a jobs process sharing PostgreSQL and Redis. Anonymous users are sent to the login page
// and come back; every page renders in the app's layout in light and dark (screenshots into
// docs/screenshots/); a tenant created through the API on the *other* web node moves the
// overview's counts and graph without a reload (JobsChanged through the hub's Redis
// backplane); jobs waiting while the jobs process is down are deleted and requeued in bulk from
// the pages; a tenant's own administrator gets 403.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const { Cluster, ROOT_EMAIL, ROOT_PASSWORD } = require("../lib/diquis");
const api = require("../lib/api");
const { launchBrowser } = require("../lib/chromium");
const { withBrowserLogs: withUiLogs } = require("../lib/ui");
const { randomSuffix } = require("../lib/wait");

const TEST_TIMEOUT = 240_000;
const UI_WAIT_MS = 60_000;
const SCREENSHOTS = process.env.E2E_SCREENSHOTS || path.join(__dirname, "..", "..", "..", "docs", "screenshots");

/** Marks the current document; a reload or navigation loses the mark. */
async function markDocument(page) {
    const mark = `doc-${randomSuffix(10)}`;
    await page.evaluate((m) => {
        window.__e2eDocumentMark = m;
    }, mark);
    return mark;
}

async function assertSameDocument(page, mark) {
    assert.equal(await page.evaluate(() => window.__e2eDocumentMark), mark, "the page was not reloaded");
}

/** Waits until the dashboard's hub connection is up. */
async function waitHub(page) {
    await page.waitForFunction(() => document.documentElement.dataset.live === "hub", null, { timeout: UI_WAIT_MS });
}

async function count(page, selector) {
    return Number((await page.locator(selector).first().innerText()).trim());
}

describe("jobs dashboard in the browser", () => {
    let cluster;
    let root;

    before(async () => {
        cluster = await Cluster.start({ label: "dashboard" });
        root = await launchBrowser("root@web1");
    });

    after(async () => {
        if (root) await root.close();
        if (cluster) await cluster.stop();
    });

    const withBrowserLogs = (fn) => withUiLogs(cluster, () => [root], fn);

    test("anonymous: to the login page and back to /jobs/; the variants of the path all answer", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1] = cluster.web;
            const { page } = root;
            await page.goto(`${web1.url}/Jobs/`);
            assert.equal(new URL(page.url()).pathname, "/login");
            assert.equal(new URL(page.url()).searchParams.get("returnUrl"), "/Jobs/");
            await page.fill("#email", ROOT_EMAIL);
            await page.fill("#password", ROOT_PASSWORD);
            await page.fill("#tenant", "root");
            await Promise.all([page.waitForURL(`${web1.url}/Jobs/`, { timeout: UI_WAIT_MS }), page.click("#sign-in")]);
            assert.equal(await page.locator("#jobs-nav").count(), 1, "the dashboard after sign-in");
            for (const variant of ["/jobs", "/jobs/", "/JOBS", "/Jobs/"]) {
                const response = await page.goto(`${web1.url}${variant}`);
                assert.equal(response.status(), 200, variant);
                assert.equal(await page.locator("#jobs-nav").count(), 1, variant);
            }
        });
    });

    test("a tenant created through the API on the other node moves the counts and graph without reload", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1, web2] = cluster.web;
            const { page } = root;
            await page.goto(`${web1.url}/jobs`);
            await waitHub(page);
            const mark = await markDocument(page);
            const before = await count(page, "#total-Succeeded");
            const graphBefore = await count(page, "#graph-realtime .sum-succeeded");
            const id = `dash-${randomSuffix(6)}`;
            await api.createTenant(web2.url, cluster.rootToken, { id, name: "Dashboard Academy", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await page.waitForFunction(
                (n) => Number(document.getElementById("total-Succeeded").textContent) > n,
                before,
                { timeout: UI_WAIT_MS },
            );
            await page.waitForFunction(
                (n) => Number(document.querySelector("#graph-realtime .sum-succeeded").textContent) > n,
                graphBefore,
                { timeout: UI_WAIT_MS },
            );
            await assertSameDocument(page, mark);
            await api.waitForTenant(web2.url, cluster.rootToken, id, (t) => t.status === "Active", "Active");
        });
    });

    test("every page in the app's layout, light and dark, no password hash anywhere", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1] = cluster.web;
            const { page } = root;
            await page.setViewportSize({ width: 1280, height: 860 });
            await page.goto(`${web1.url}/jobs/state/Succeeded`);
            const firstJob = await page.locator("#job-rows a[href^='/jobs/job/']").first().getAttribute("href");
            const pages = [
                ["overview", "/jobs"],
                ["enqueued", "/jobs/state/Enqueued"],
                ["scheduled", "/jobs/state/Scheduled"],
                ["processing", "/jobs/state/Processing"],
                ["succeeded", "/jobs/state/Succeeded"],
                ["failed", "/jobs/state/Failed"],
                ["deleted", "/jobs/state/Deleted"],
                ["awaiting", "/jobs/state/Awaiting"],
                ["retries", "/jobs/retries"],
                ["recurring", "/jobs/recurring"],
                ["servers", "/jobs/servers"],
                ["queues", "/jobs/queues"],
                ["job", firstJob],
            ];
            const shots = new Set(["overview", "succeeded", "job", "servers", "queues", "recurring"]);
            fs.mkdirSync(SCREENSHOTS, { recursive: true });
            for (const [name, url] of pages) {
                for (const scheme of ["light", "dark"]) {
                    await page.emulateMedia({ colorScheme: scheme });
                    const response = await page.goto(`${web1.url}${url}`);
                    assert.equal(response.status(), 200, url);
                    const html = await page.content();
                    assert.ok(!html.includes("$argon2"), `no password hash on ${url}`);
                    assert.equal(await page.locator("header.top a[href='/tenants']").count(), 1, `${url}: the app's header links back to Tenants`);
                    assert.equal(await page.locator("header.top button:has-text('Sign out')").count(), 1, `${url}: sign-out in the header`);
                    assert.equal(await page.locator("#jobs-nav").count(), 1, `${url}: the dashboard's navigation`);
                    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
                    const dark = background === "rgb(15, 20, 32)";
                    assert.equal(dark, scheme === "dark", `${url} in ${scheme}: body background ${background}`);
                    if (shots.has(name)) await page.screenshot({ path: path.join(SCREENSHOTS, `jobs-${name}-${scheme}.png`) });
                }
            }
            // The toggle overrides the system preference, and is remembered.
            await page.emulateMedia({ colorScheme: "light" });
            await page.goto(`${web1.url}/jobs`);
            await page.click("#theme-toggle");
            assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
            await page.reload();
            assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark", "the choice is kept");
            await page.click("#theme-toggle");
            assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "light");
            const errors = root.console.filter((l) => l.startsWith("pageerror:"));
            assert.deepEqual(errors, [], "no script errors");
        });
    });

    test("jobs waiting while the jobs process is down: delete them in bulk, requeue them in bulk, they run", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1, web2] = cluster.web;
            const { page } = root;
            await cluster.jobs.stop();
            const ids = [`bulk-${randomSuffix(6)}`, `bulk-${randomSuffix(6)}`];
            for (const id of ids) {
                await api.createTenant(web2.url, cluster.rootToken, { id, name: `Bulk ${id}`, adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            }
            await page.goto(`${web1.url}/jobs/state/Enqueued`);
            const rows = page.locator("#job-rows tr[id^='job-']");
            await rows.nth(1).waitFor({ timeout: UI_WAIT_MS });
            assert.equal(await rows.count(), 2, "the two provisioning jobs wait");
            const jobIds = await rows.evaluateAll((trs) => trs.map((tr) => tr.id.replace("job-", "")));
            await page.check("#select-all");
            await Promise.all([page.waitForURL(/\/jobs\/state\/Enqueued\?page=1$/, { timeout: UI_WAIT_MS }), page.click("#bulk-delete")]);
            assert.equal(await page.locator("#job-rows tr[id^='job-']").count(), 0, "none left enqueued");

            await page.goto(`${web1.url}/jobs/state/Deleted`);
            for (const id of jobIds) await page.check(`#job-${id} input[name="ids"]`);
            await Promise.all([page.waitForURL(/\/jobs\/state\/Deleted\?page=1$/, { timeout: UI_WAIT_MS }), page.click("#bulk-requeue")]);
            for (const id of jobIds) assert.equal(await page.locator(`#job-${id}`).count(), 0, `job ${id} left Deleted`);

            await page.goto(`${web1.url}/jobs/state/Enqueued`);
            await waitHub(page);
            const mark = await markDocument(page);
            assert.equal(await page.locator("#job-rows tr[id^='job-']").count(), 2, "both enqueued again");
            await cluster.restartJobs();
            // The rows leave the Enqueued page live as the jobs process runs them.
            await page.locator("#job-rows tr[id^='job-']").first().waitFor({ state: "detached", timeout: UI_WAIT_MS });
            await page.waitForFunction(() => document.querySelectorAll("#job-rows tr[id^='job-']").length === 0, null, { timeout: UI_WAIT_MS });
            await assertSameDocument(page, mark);
            for (const id of ids) await api.waitForTenant(web1.url, cluster.rootToken, id, (t) => t.status === "Active", "Active");
        });
    });

    test("Trigger now on the Recurring page runs the housekeeping job; its page turns Succeeded live with its log", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1] = cluster.web;
            const { page } = root;
            await page.goto(`${web1.url}/jobs/recurring`);
            const row = page.locator("#recurring-housekeeping");
            assert.match(await row.innerText(), /diquis\.housekeeping@1/, "the app's recurring job is listed");
            await Promise.all([page.waitForURL(/\/jobs\/job\/\d+$/, { timeout: UI_WAIT_MS }), row.locator("button:has-text('Trigger now')").click()]);
            await waitHub(page);
            const mark = await markDocument(page);
            await page.waitForFunction(() => document.querySelector(".state-cell")?.textContent.trim() === "Succeeded", null, { timeout: UI_WAIT_MS });
            await assertSameDocument(page, mark);
            assert.match(await page.locator("#job-detail").innerText(), /removed \d+ expired refresh tokens/, "the run's log line");
            // The Recurring page names the run as its last one.
            const jobPath = new URL(page.url()).pathname;
            await page.goto(`${web1.url}/jobs/recurring`);
            assert.equal(await page.locator(`#recurring-housekeeping a[href='${jobPath}']`).count(), 1, "last run links to the job");
        });
    });

    test("a tenant's row links to its jobs, and the jobs back to the tenant", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1] = cluster.web;
            const { page } = root;
            const id = `keyed-${randomSuffix(6)}`;
            await api.createTenant(web1.url, cluster.rootToken, { id, name: `Keyed ${id}`, adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await api.waitForTenant(web1.url, cluster.rootToken, id, (t) => t.status === "Active", "Active");
            await page.goto(`${web1.url}/tenants?id=${id}`);
            await Promise.all([page.waitForURL(/\/jobs\/key\//, { timeout: UI_WAIT_MS }), page.click(`#tenant-${id} a:has-text('Jobs')`)]);
            const rows = page.locator("#job-rows tr[id^='job-']");
            assert.equal(await rows.count(), 1, "the tenant's one provisioning job");
            assert.match(await rows.first().innerText(), /Succeeded.*provision-tenant/s);
            await Promise.all([page.waitForURL(new RegExp(`/tenants\\?id=${id}$`), { timeout: UI_WAIT_MS }), page.click("a.app-link")]);
            assert.equal(await page.locator("#tenant-rows tr").count(), 1, "the tenant's row alone");
            assert.equal(await page.locator(`#tenant-${id}`).count(), 1);
        });
    });

    test("a tenant's administrator gets 403", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1] = cluster.web;
            const id = `own-${randomSuffix(6)}`;
            await api.createTenant(web1.url, cluster.rootToken, { id, name: "Owner Academy", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await api.waitForTenant(web1.url, cluster.rootToken, id, (t) => t.status === "Active", "Active");
            const owner = await launchBrowser("owner@web1");
            try {
                const { page } = owner;
                await page.goto(`${web1.url}/login`);
                await page.fill("#email", `owner@${id}.test`);
                await page.fill("#password", "Owner-Passw0rd!");
                await page.fill("#tenant", id);
                await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/login"), { timeout: UI_WAIT_MS }), page.click("#sign-in")]);
                for (const url of ["/jobs", "/jobs/", "/JOBS/state/Succeeded", "/jobs/recurring"]) {
                    const response = await page.goto(`${web1.url}${url}`);
                    assert.equal(response.status(), 403, url);
                }
                assert.equal(await page.locator("header.top a[href='/jobs']").count(), 0, "no Jobs link for a tenant user");
            } finally {
                await owner.close();
            }
        });
    });
});
