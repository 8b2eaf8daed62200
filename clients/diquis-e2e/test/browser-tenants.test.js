"use strict";
// The tenant page as a person sees it (issue 17, "Forms" and "Failure and retry"), in Chromium on
// a production `diquis web` node (PostgreSQL, Redis, a separate `diquis jobs`):
//
// * forms: an invalid create form shows each problem next to its field in the label's words
//   ("Name is required.", not "'name' is required."), an invalid id our slug rule (not the
//   browser's pattern message), and the last submit's problems go away when the next starts;
//   the edit form (a plain post) does the same;
// * status: a deactivated tenant shows Inactive (no green Active badge); a provisioning that keeps
//   failing shows Retrying with the attempt count and the next attempt's time, then Failed when no
//   attempt is left, and the dashboard's Requeue (the button the docs name) provisions it once the
//   cause is fixed.
//
// Tenant jobs here get 2 attempts an hour apart (Jobs:TenantRetry:*). The hour is not waited
// for: the test moves the scheduled attempt's time to now in the job storage, as the clock would.

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");

const { Cluster, ROOT_EMAIL, ROOT_PASSWORD } = require("../lib/diquis");
const api = require("../lib/api");
const pg = require("../lib/postgres");
const { launchBrowser } = require("../lib/chromium");
const { randomSuffix } = require("../lib/wait");
const { UI_WAIT_MS, signIn, waitLive, clickAndLoad, withBrowserLogs: withUiLogs } = require("../lib/ui");

const TEST_TIMEOUT = 240_000;

/** Asserts `#<field>-error` says `text`, is what the input points at, and sits after it, before the next input. */
async function assertNextToField(page, field, text) {
    const error = page.locator(`#${field}-error`);
    await error.waitFor({ state: "visible", timeout: UI_WAIT_MS });
    const shown = await error.innerText();
    assert.ok(text instanceof RegExp ? text.test(shown) : shown === text, `#${field}-error says ${text}: "${shown}"`);
    assert.equal(await page.getAttribute(`#${field}`, "aria-invalid"), "true");
    assert.equal(await page.getAttribute(`#${field}`, "aria-describedby"), `${field}-error`);
    const placed = await page.evaluate((f) => {
        const input = document.getElementById(f);
        const error = document.getElementById(`${f}-error`);
        const inputs = [...input.form.querySelectorAll("input:not([type=hidden]), select")];
        const next = inputs[inputs.indexOf(input) + 1];
        const after = input.compareDocumentPosition(error) & Node.DOCUMENT_POSITION_FOLLOWING;
        const beforeNext = !next || error.compareDocumentPosition(next) & Node.DOCUMENT_POSITION_FOLLOWING;
        return Boolean(after && beforeNext);
    }, field);
    assert.ok(placed, `#${field}-error is right after its field`);
}

describe("browser: tenant forms and what a tenant's status says", () => {
    let cluster;
    let browser;
    let base;

    before(async () => {
        cluster = await Cluster.start({
            webNodes: 1,
            label: "tenants",
            extraEnv: { Jobs__TenantRetry__Attempts: "2", Jobs__TenantRetry__Delay: "01:00:00" },
        });
        base = cluster.web[0].url;
        browser = await launchBrowser("tenants");
        await cluster.withLogs(async () => {
            await signIn(browser, base, { email: ROOT_EMAIL, password: ROOT_PASSWORD });
            await waitLive(browser);
        });
    });

    after(async () => {
        if (browser) await browser.close();
        if (cluster) await cluster.stop();
    });

    const withBrowserLogs = (fn) => withUiLogs(cluster, () => [browser], fn);

    test("create form: problems next to their fields in words, our slug rule, cleared on the next submit", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const { page } = browser;
            await page.goto(`${base}/tenants`);
            await waitLive(browser);

            // Nothing filled in: every field says it is required, in the label's words.
            await page.click("#create-tenant");
            await assertNextToField(page, "id", "Id is required.");
            await assertNextToField(page, "name", "Name is required.");
            await assertNextToField(page, "adminEmail", "Admin email is required.");
            await assertNextToField(page, "password", "Admin password is required.");
            const text = await page.locator("#create").innerText();
            assert.doesNotMatch(text, /'(id|name|adminEmail|password)'/, "no API field names on the page");

            // An invalid id: our rule, in words (the browser's own pattern check does not step in).
            await page.fill("#id", "Bad Id");
            await page.fill("#name", "Bad Id FC");
            await page.fill("#adminEmail", "owner@bad.test");
            await page.fill("#password", "Owner-Passw0rd!");
            await page.click("#create-tenant");
            await assertNextToField(page, "id", /^Id must be lower-case letters and digits in words separated by single hyphens \(like 'my-academy'\); 'Bad Id' is not\.$/);
            // The fields that were right lost their earlier messages.
            for (const f of ["name", "adminEmail", "password"]) {
                assert.equal(await page.locator(`#${f}-error`).count(), 0, `#${f}-error is gone`);
                assert.equal(await page.getAttribute(`#${f}`, "aria-invalid"), null);
            }
            assert.equal(await page.locator("#create .field-error").count(), 1);

            // A taken id: the box above the form says so ...
            await page.fill("#id", "root");
            await page.fill("#password", "Owner-Passw0rd!");
            await page.click("#create-tenant");
            const box = page.locator("#create-problems .problems");
            await box.waitFor({ state: "visible", timeout: UI_WAIT_MS });
            assert.match(await box.innerText(), /already exists/);
            assert.equal(await page.locator("#create .field-error").count(), 0, "the id's earlier message is gone");

            // ... and the next submit, a good one, clears it: the row appears and turns Active.
            const id = `forms-${randomSuffix(6)}`;
            await page.fill("#id", id);
            await page.fill("#name", "Forms FC");
            await page.fill("#adminEmail", `owner@${id}.test`);
            await page.fill("#password", "Owner-Passw0rd!");
            await page.click("#create-tenant");
            await page.locator(`#tenant-${id}[data-shown="Active"]`).waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.equal(await page.locator("#create-problems").innerHTML(), "", "the old error box is gone");
            assert.equal(await page.locator("#create .field-error").count(), 0);

            // The edit form is a plain post: the same words next to the field.
            await clickAndLoad(page, `#tenant-${id} a:has-text("Edit")`);
            await page.fill("#name", "   ");
            await clickAndLoad(page, "#save-tenant");
            await assertNextToField(page, "name", "Name is required.");
            assert.doesNotMatch(await page.locator("main").innerText(), /'name'/);
        });
    });

    test("a deactivated tenant shows Inactive, not a green Active badge", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const { page } = browser;
            const id = `sleepy-${randomSuffix(6)}`;
            await api.createTenant(base, cluster.rootToken, { id, name: "Sleepy FC", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
            await api.waitForTenant(base, cluster.rootToken, id, (t) => t.status === "Active", "Active");
            await page.goto(`${base}/tenants`);
            await waitLive(browser);
            await clickAndLoad(page, `#tenant-${id} a:has-text("Edit")`);
            await page.uncheck("#isActive");
            await clickAndLoad(page, "#save-tenant");
            const row = page.locator(`#tenant-${id}[data-shown="Inactive"]`);
            await row.waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.equal(await row.locator(".badge").innerText(), "Inactive");
            assert.equal(await row.locator(".badge-Active").count(), 0, "no Active badge");
            assert.match(await row.innerText(), /\bNo\b/, "Active: No");
            const tenant = await api.getTenant(base, cluster.rootToken, id);
            assert.equal(tenant.outlook.state, "Inactive", "the API says the same");
        });
    });

    test("a failing provisioning: Retrying with attempt and time, then Failed; Requeue in Jobs provisions it", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const { page } = browser;
            const id = `doomed-${randomSuffix(6)}`;
            // A leftover database with the tenant's name whose table refuses every row.
            const tenantDb = `${cluster.database}-${id}`;
            await pg.query("postgres", `CREATE DATABASE ${pg.ident(tenantDb)}`);
            await pg.query(
                tenantDb,
                "CREATE TABLE tenant_metadata (tenant_id TEXT PRIMARY KEY, provisioned_on TIMESTAMPTZ NOT NULL, CONSTRAINT e2e_refuse_rows CHECK (false))",
            );

            await page.goto(`${base}/tenants`);
            await waitLive(browser);
            await page.fill("#id", id);
            await page.fill("#name", "Doomed FC");
            await page.fill("#adminEmail", `owner@${id}.test`);
            await page.fill("#password", "Owner-Passw0rd!");
            await page.check("#hasIsolatedDatabase");
            await page.click("#create-tenant");

            // The first attempt fails: a red toast, and the row says the job runs again, when.
            const toast = page.locator("#toast-container .toast-error", { hasText: "e2e_refuse_rows" });
            await toast.first().waitFor({ state: "visible", timeout: UI_WAIT_MS });
            const retrying = page.locator(`#tenant-${id}[data-shown="Retrying"]`);
            await retrying.waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.equal(await retrying.locator(".badge").innerText(), "Retrying");
            const detail = await retrying.locator(".status-detail").innerText();
            const m = /^attempt 2 of 2 at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$/.exec(detail);
            assert.ok(m, `attempt count and time: "${detail}"`);
            const next = new Date(`${m[1].replace(" ", "T")}Z`);
            assert.ok(next.getTime() > Date.now() + 30 * 60_000, `the next attempt is an hour after the failure: ${detail}`);
            assert.match(await retrying.innerText(), /e2e_refuse_rows/, "the error shows in the row");
            const outlook = (await api.getTenant(base, cluster.rootToken, id)).outlook;
            assert.equal(outlook.state, "Retrying");
            assert.equal(outlook.attempt, 2);
            assert.equal(outlook.maxAttempts, 2);
            assert.equal(new Date(outlook.nextAttemptAt).toISOString().slice(0, 19), next.toISOString().slice(0, 19));

            // The attempt's time comes: the last attempt fails too, and the row says no attempt is left.
            const jobId = await pg.scalar(cluster.database, `SELECT failed_job_id FROM tenants WHERE id = ${pg.literal(id)}`);
            await pg.query(
                cluster.database,
                `UPDATE bg_jobs SET run_at = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint WHERE id = ${jobId} AND state = 'Scheduled'`,
            );
            const failed = page.locator(`#tenant-${id}[data-shown="Failed"]`);
            await failed.waitFor({ state: "attached", timeout: UI_WAIT_MS });
            assert.equal(await failed.locator(".badge").innerText(), "Failed");
            assert.equal(await failed.locator(".status-detail").innerText(), "no attempt left: fix the cause, then Requeue its job in Jobs");
            assert.equal((await api.getTenant(base, cluster.rootToken, id)).outlook.state, "Failed");

            // What the docs say to do: fix the cause, open the job in Jobs (its Failed list), press Requeue.
            await pg.query(tenantDb, "ALTER TABLE tenant_metadata DROP CONSTRAINT e2e_refuse_rows");
            await clickAndLoad(page, 'header.top a:has-text("Jobs")');
            await clickAndLoad(page, 'nav a:has-text("Failed")');
            await clickAndLoad(page, `a[href$="/job/${jobId}"]`);
            await clickAndLoad(page, 'button:has-text("Requeue")');
            await page.goto(`${base}/tenants`);
            await page.locator(`#tenant-${id}[data-shown="Active"]`).waitFor({ state: "attached", timeout: UI_WAIT_MS });
        });
    });
});
