"use strict";
// Browser (issue 6, "Tests"): headless Chromium through playwright-core, two separate browsers
// (own temp profiles, so no shared cookies) signed in through the login form, one on each web
// node. A tenant created with the form shows the toast and its row turns Active with no page
// reload, in both; an edit on the other node shows live in both; the seed document's script,
// served unchanged at /seed-demo, receives TenantCreated.
//
// The jobs process is held back (stopped) while a form post navigates, then started: otherwise
// the job could finish before the page after the post is connected, and the event would be
// folded into the rendered HTML instead of arriving live, which is not what is under test.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");

const { Cluster, ROOT_EMAIL, ROOT_PASSWORD } = require("../lib/diquis");
const api = require("../lib/api");
const { launchBrowser } = require("../lib/chromium");
const { withBrowserLogs: withUiLogs } = require("../lib/ui");
const { randomSuffix } = require("../lib/wait");

const TEST_TIMEOUT = 240_000;
const UI_WAIT_MS = 60_000;

/** Signs in through the login form of `base`; resolves once the live tenant page is connected. */
async function signIn(browser, base) {
    const { page } = browser;
    await page.goto(`${base}/login`);
    await page.fill("#email", ROOT_EMAIL);
    await page.fill("#password", ROOT_PASSWORD);
    await page.fill("#tenant", "root");
    await Promise.all([page.waitForURL(`${base}/tenants`, { timeout: UI_WAIT_MS }), page.click("#sign-in")]);
    await waitLive(browser);
}

/** Waits until the page's hub connection is up (the page sets window.diquisConnected). */
async function waitLive(browser) {
    await browser.page.waitForFunction(() => window.diquisConnected === true, null, { timeout: UI_WAIT_MS });
}

/** Marks the current document; a reload or navigation loses the mark. */
async function markDocument(browser) {
    const mark = `doc-${randomSuffix(10)}`;
    await browser.page.evaluate((m) => {
        window.__e2eDocumentMark = m;
    }, mark);
    browser.navigations = 0;
    return mark;
}

async function assertSameDocument(browser, mark) {
    const now = await browser.page.evaluate(() => window.__e2eDocumentMark);
    assert.equal(now, mark, `${browser.name}: the page was not reloaded`);
    assert.equal(browser.navigations, 0, `${browser.name}: no navigation happened`);
}

/** Waits for a toast whose text contains `text`; resolves with its class attribute. */
async function waitToast(browser, text) {
    const toast = browser.page.locator("#toast-container .toast", { hasText: text });
    await toast.first().waitFor({ state: "visible", timeout: UI_WAIT_MS });
    return toast.first().getAttribute("class");
}

/**
 * Waits until the row of `id` shows `status` (and `text`, when given: a row that was already
 * in that status before an edit is replaced once the page has fetched it again); resolves with
 * the row's text.
 */
async function waitRowStatus(browser, id, status, text) {
    const row = browser.page.locator(`#tenant-${id}[data-status="${status}"]`, text ? { hasText: text } : {});
    await row.waitFor({ state: "attached", timeout: UI_WAIT_MS });
    return row.innerText();
}

describe("browser: live tenant page on two web nodes, two browsers", () => {
    let cluster;
    let a;
    let b;

    before(async () => {
        cluster = await Cluster.start({ label: "browser" });
        await cluster.withLogs(async () => {
            const [web1, web2] = cluster.web;
            a = await launchBrowser("A@web1");
            b = await launchBrowser("B@web2");
            for (const br of [a, b]) {
                br.page.on("framenavigated", (frame) => {
                    if (frame === br.page.mainFrame()) br.navigations = (br.navigations || 0) + 1;
                });
            }
            await signIn(a, web1.url);
            await signIn(b, web2.url);
        });
    });

    after(async () => {
        if (a) await a.close();
        if (b) await b.close();
        if (cluster) await cluster.stop();
    });

    const withBrowserLogs = (fn) => withUiLogs(cluster, () => [a, b], fn);

    function assertNoPageErrors(br) {
        const errors = br.console.filter((l) => l.startsWith("pageerror:") || l.includes("hub connection failed"));
        assert.deepEqual(errors, [], `${br.name}: no script errors`);
    }

    test("create a tenant in the UI: toast and row Active without reload, on this node and on the other", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1] = cluster.web;
            const id = `ui-${randomSuffix(6)}`;
            const name = `UI Academy ${id}`;
            const markB = await markDocument(b);
            await cluster.jobs.stop();

            await a.page.fill("#id", id);
            await a.page.fill("#name", name);
            await a.page.fill("#adminEmail", `owner@${id}.test`);
            await a.page.fill("#password", "Owner-Passw0rd!");
            await Promise.all([a.page.waitForURL(`${web1.url}/tenants`, { timeout: UI_WAIT_MS }), a.page.click("#create-tenant")]);
            await waitLive(a);
            const markA = await markDocument(a);
            const pendingRow = a.page.locator(`#tenant-${id}`);
            assert.equal(await pendingRow.getAttribute("data-status"), "Pending", "the new row is Pending");
            assert.equal(await pendingRow.locator(".spinner").count(), 1, "a spinner shows while it is pending");

            await cluster.restartJobs();
            const expected = `Tenant '${name}' has been created successfully!`;
            for (const br of [a, b]) {
                const classes = await waitToast(br, expected);
                assert.match(classes, /toast-success/, `${br.name}: a success toast`);
                const text = await waitRowStatus(br, id, "Active");
                assert.ok(text.includes(name), `${br.name}: the row shows the name: ${text}`);
                assert.equal(await br.page.locator(`#tenant-${id} .spinner`).count(), 0, `${br.name}: no spinner once Active`);
                assert.equal(await br.page.locator(`#tenant-${id}`).count(), 1, `${br.name}: one row for the tenant`);
            }
            await assertSameDocument(a, markA);
            await assertSameDocument(b, markB);
            // One toast per browser for the event.
            for (const br of [a, b]) {
                assert.equal(await br.page.locator("#toast-container .toast", { hasText: expected }).count(), 1, `${br.name}: one toast`);
                assertNoPageErrors(br);
            }
            const row = await api.getTenant(web1.url, cluster.rootToken, id);
            assert.equal(row.status, "Active");
        });
    });

    test("edit a tenant in the UI on the other node: both browsers see the update live", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1, web2] = cluster.web;
            const id = `edit-${randomSuffix(6)}`;
            await api.createTenant(web1.url, cluster.rootToken, { id, name: "Edit Me FC", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            for (const br of [a, b]) await waitRowStatus(br, id, "Active");

            const markA = await markDocument(a);
            await cluster.jobs.stop();
            const newName = `Edited FC ${id}`;
            await Promise.all([b.page.waitForURL(`${web2.url}/tenants/${id}/edit`, { timeout: UI_WAIT_MS }), b.page.click(`#tenant-${id} a:has-text("Edit")`)]);
            await b.page.fill("#name", newName);
            await Promise.all([b.page.waitForURL(`${web2.url}/tenants`, { timeout: UI_WAIT_MS }), b.page.click("#save-tenant")]);
            await waitLive(b);
            const markB = await markDocument(b);
            const updatingRow = b.page.locator(`#tenant-${id}`);
            assert.equal(await updatingRow.getAttribute("data-status"), "Updating");
            assert.equal(await updatingRow.locator(".spinner").count(), 1, "a spinner shows while it is updating");

            await cluster.restartJobs();
            const expected = `Tenant '${newName}' has been updated successfully!`;
            for (const br of [a, b]) {
                assert.match(await waitToast(br, expected), /toast-success/);
                const text = await waitRowStatus(br, id, "Active", newName);
                assert.ok(text.includes(newName), `${br.name}: the row shows the new name: ${text}`);
            }
            await assertSameDocument(a, markA);
            await assertSameDocument(b, markB);
            for (const br of [a, b]) assertNoPageErrors(br);
        });
    });

    test("the seed document's script, pasted unchanged, receives TenantCreated in the browser", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const [web1, web2] = cluster.web;
            const seed = await launchBrowser("seed@web2");
            try {
                await seed.page.goto(`${web2.url}/login?returnUrl=%2Fseed-demo`);
                await seed.page.fill("#email", ROOT_EMAIL);
                await seed.page.fill("#password", ROOT_PASSWORD);
                await Promise.all([seed.page.waitForURL(`${web2.url}/seed-demo`, { timeout: UI_WAIT_MS }), seed.page.click("#sign-in")]);
                await seed.page.waitForFunction(
                    () => typeof connection !== "undefined" && connection.state === "Connected",
                    null,
                    { timeout: UI_WAIT_MS },
                );
                const id = `seed-${randomSuffix(6)}`;
                const name = `Seed Script Academy ${id}`;
                // Record what the script shows with toastr across the reload it does afterwards
                // (the seed's "simple approach": location.reload() after the toast).
                await seed.page.evaluate(() => {
                    const original = window.toastr.success.bind(window.toastr);
                    window.toastr.success = (message, ...rest) => {
                        sessionStorage.setItem("e2e-seed-toast", message);
                        return original(message, ...rest);
                    };
                });
                const logged = seed.page.waitForEvent("console", {
                    predicate: (m) => m.text().includes("Tenant created:"),
                    timeout: UI_WAIT_MS,
                });
                const reloaded = seed.page.waitForEvent("load", { timeout: UI_WAIT_MS });
                await api.createTenant(web1.url, cluster.rootToken, { id, name, adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
                await logged;
                await reloaded;
                const toast = await seed.page.evaluate(() => sessionStorage.getItem("e2e-seed-toast"));
                assert.equal(toast, `Tenant "${name}" created successfully!`, "the seed script's toast");
                // After its reload the page lists the tenant as Active.
                await seed.page.locator(`#tenant-${id}[data-status="Active"]`).waitFor({ state: "attached", timeout: UI_WAIT_MS });
            } finally {
                await seed.close();
            }
        });
    });
});
