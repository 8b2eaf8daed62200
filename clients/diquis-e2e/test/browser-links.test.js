"use strict";
// Every link leads somewhere (issue 17, "Dead links"), in Chromium as a person meets them: signed
// in as root through the form, every link of the header, the tenant list, the users and password
// pages and the jobs dashboard (its own Overview `/jobs/`, state lists, job pages) is followed
// from the rendered pages, and none answers 404 (nor any 4xx/5xx). On a production `diquis web`
// node (PostgreSQL, Redis, a separate `diquis jobs`), on that jobs node, and in the one-process
// mode (SQLite). The browser finds `/favicon.ico` (an icon, 200).

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { Cluster, DiquisProcess, ROOT_EMAIL, ROOT_PASSWORD } = require("../lib/diquis");
const api = require("../lib/api");
const { launchBrowser } = require("../lib/chromium");
const { randomSuffix } = require("../lib/wait");
const { signIn, crawl, withBrowserLogs: withUiLogs } = require("../lib/ui");

const TEST_TIMEOUT = 240_000;

/** A tenant (with a job in the dashboard) so the rows, their Edit and Users links and job pages exist. */
async function someTenant(base, token) {
    const id = `links-${randomSuffix(6)}`;
    await api.createTenant(base, token, { id, name: "Links FC", adminEmail: `owner@${id}.test`, password: "Owner-Passw0rd!" });
    await api.waitForTenant(base, token, id, (t) => t.status === "Active", "Active");
    return id;
}

/** Crawls from `starts` on `base`; asserts every page answered below 400 and the links it must have met. */
async function assertEveryLinkWorks(browser, base, starts, mustMeet) {
    const { page } = browser;
    const { visited, from } = await crawl(page, starts.map((s) => `${base}${s}`));
    const broken = [...visited].filter(([, status]) => status >= 400).map(([url, status]) => `${status} ${url} (linked from ${from.get(url)})`);
    assert.deepEqual(broken, [], `every link answers; broken:\n${broken.join("\n")}`);
    const paths = [...visited.keys()].map((u) => {
        const url = new URL(u);
        return url.pathname + url.search;
    });
    for (const p of mustMeet) {
        assert.ok(paths.some((x) => (p instanceof RegExp ? p.test(x) : x === p)), `the crawl met ${p}; visited:\n${paths.join("\n")}`);
    }
    return paths;
}

/** The favicon as the browser asks for it. */
async function assertFavicon(browser, base) {
    const r = await browser.page.request.get(`${base}/favicon.ico`);
    assert.equal(r.status(), 200, "/favicon.ico is served");
    assert.equal(r.headers()["content-type"], "image/x-icon");
    const body = await r.body();
    assert.deepEqual([...body.subarray(0, 4)], [0, 0, 1, 0], "an ICO file");
}

describe("browser: every link of the UI answers, on a web node, on the jobs node", () => {
    let cluster;
    let browser;
    let tenantId;

    before(async () => {
        cluster = await Cluster.start({ webNodes: 1, label: "links" });
        tenantId = await cluster.withLogs(() => someTenant(cluster.web[0].url, cluster.rootToken));
        browser = await launchBrowser("links");
    });

    after(async () => {
        if (browser) await browser.close();
        if (cluster) await cluster.stop();
    });

    const withBrowserLogs = (fn) => withUiLogs(cluster, () => [browser], fn);

    test("diquis web: header, tenant list, users, password and the dashboard's own links; the favicon", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const base = cluster.web[0].url;
            await signIn(browser, base, { email: ROOT_EMAIL, password: ROOT_PASSWORD });
            // The header's links, as rendered on the tenant page.
            const header = await browser.page.$$eval("header.top a[href]", (as) => as.map((a) => a.getAttribute("href")));
            for (const l of ["/", "/tenants", "/jobs", "/account/password"]) assert.ok(header.includes(l), `header has ${l}: ${header}`);
            await assertEveryLinkWorks(browser, base, ["/"], [
                "/tenants",
                "/jobs",
                "/jobs/",
                "/account/password",
                `/users?tenant=${tenantId}`,
                `/tenants/${tenantId}/edit`,
                /^\/jobs\/state\/Succeeded$/,
                /^\/jobs\/job\/\d+$/,
            ]);
            await assertFavicon(browser, base);
        });
    });

    test("diquis jobs: the dashboard and its links", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const base = cluster.jobs.url;
            await signIn(browser, base, { email: ROOT_EMAIL, password: ROOT_PASSWORD, landing: "/jobs" });
            await assertEveryLinkWorks(browser, base, ["/", "/jobs"], ["/jobs", "/jobs/", /^\/jobs\/state\/Failed$/, /^\/jobs\/job\/\d+$/]);
            await assertFavicon(browser, base);
        });
    });

    test("with the jobs process stopped, the web node's /health/ready says Degraded and why", { timeout: TEST_TIMEOUT }, async () => {
        await withBrowserLogs(async () => {
            const base = cluster.web[0].url;
            // A graceful stop takes the jobs process off the list of job servers at once.
            await cluster.jobs.stop();
            const response = await browser.page.goto(`${base}/health/ready`);
            assert.equal(response.status(), 200, "Degraded still answers 200");
            const health = JSON.parse(await browser.page.locator("body").innerText());
            assert.equal(health.status, "Degraded", JSON.stringify(health));
            assert.equal(health.entries.jobServers.status, "Degraded", JSON.stringify(health));
            assert.match(health.entries.jobServers.description || "", /no jobs process has sent a heartbeat/, "the reason, for root");
        });
    });
});

describe("browser: every link of the UI answers in the one-process mode", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "diquis-e2e-links-solo-"));
    let proc;
    let browser;

    after(async () => {
        if (browser) await browser.close();
        if (proc) await proc.stop();
        if (!process.env.E2E_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
    });

    test("diquis alone: the same crawl, the favicon", { timeout: TEST_TIMEOUT }, async () => {
        proc = new DiquisProcess({
            name: "diquis",
            role: "",
            env: { Urls: "http://127.0.0.1:0", Seed__AdminEmail: ROOT_EMAIL, Seed__AdminPassword: ROOT_PASSWORD },
            workDir: dir,
            logFile: path.join(dir, "diquis.log"),
        });
        try {
            await proc.start();
            await proc.waitReady();
            const base = proc.url;
            const token = await api.login(base, ROOT_EMAIL, ROOT_PASSWORD, "root");
            const id = await someTenant(base, token);
            browser = await launchBrowser("links-solo");
            await signIn(browser, base, { email: ROOT_EMAIL, password: ROOT_PASSWORD });
            await assertEveryLinkWorks(browser, base, ["/"], ["/tenants", "/jobs", "/jobs/", "/account/password", `/users?tenant=${id}`, /^\/jobs\/job\/\d+$/]);
            await assertFavicon(browser, base);
        } catch (e) {
            if (browser) e.message += `\n--- console ---\n${browser.console.slice(-30).join("\n")}`;
            e.message += `\n${proc.tail()}`;
            throw e;
        }
    });
});
