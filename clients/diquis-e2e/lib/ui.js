"use strict";
// What a person does in the browser, shared by the browser suites: sign in through the form,
// wait for the live connection, crawl the links of a page.

const UI_WAIT_MS = 60_000;

/**
 * Signs in through `base`/login with the form; resolves once the page after it has loaded
 * (`landing`: the path it should land on, default `/tenants`, root's list).
 */
async function signIn(browser, base, { email, password, tenant = "root", landing = "/tenants" }) {
    const { page } = browser;
    await page.goto(`${base}/login`);
    await page.fill("#email", email);
    await page.fill("#password", password);
    await page.fill("#tenant", tenant);
    await Promise.all([page.waitForURL(`${base}${landing}`, { timeout: UI_WAIT_MS }), page.click("#sign-in")]);
}

/** Waits until the page's hub connection is up (the page sets window.diquisConnected). */
async function waitLive(browser) {
    await browser.page.waitForFunction(() => window.diquisConnected === true, null, { timeout: UI_WAIT_MS });
}

/** Clicks `selector` (a submit button or a link) and resolves once the page it leads to has loaded. */
async function clickAndLoad(page, selector) {
    await Promise.all([page.waitForNavigation({ timeout: UI_WAIT_MS, waitUntil: "load" }), page.click(selector)]);
}

/** The local links (`a[href]` on the same origin) of the page as rendered, absolute, without fragment. */
async function localLinks(page) {
    const origin = new URL(page.url()).origin;
    const hrefs = await page.$$eval("a[href]", (as) => as.map((a) => a.href));
    const out = new Set();
    for (const href of hrefs) {
        const u = new URL(href);
        if (u.origin !== origin) continue;
        u.hash = "";
        out.add(u.toString());
    }
    return [...out];
}

/**
 * Opens `starts` in the browser and follows every local link found on the rendered pages,
 * breadth first, up to `limit` pages. Resolves with `{ visited: Map(url → status), from: Map(url → page it was found on) }`.
 */
async function crawl(page, starts, { limit = 80 } = {}) {
    const visited = new Map();
    const from = new Map();
    const queue = [...starts];
    for (const s of starts) from.set(s, "(start)");
    while (queue.length > 0 && visited.size < limit) {
        const url = queue.shift();
        if (visited.has(url)) continue;
        const response = await page.goto(url, { timeout: UI_WAIT_MS });
        const status = response ? response.status() : 0;
        visited.set(url, status);
        const type = response ? response.headers()["content-type"] || "" : "";
        if (status >= 400 || !type.startsWith("text/html")) continue;
        for (const link of await localLinks(page)) {
            if (!visited.has(link) && !from.has(link)) {
                from.set(link, url);
                queue.push(link);
            }
        }
    }
    return { visited, from };
}

/**
 * Runs `fn` with the cluster's process logs, and the last console lines of each of `browsers`
 * (given as a function: they may be launched after this is set up), added to any failure.
 */
function withBrowserLogs(cluster, browsers, fn) {
    return cluster.withLogs(async () => {
        try {
            await fn();
        } catch (e) {
            for (const br of browsers().filter(Boolean)) {
                e.message += `\n--- console of ${br.name} ---\n${br.console.slice(-30).join("\n")}`;
            }
            throw e;
        }
    });
}

module.exports = { UI_WAIT_MS, signIn, waitLive, clickAndLoad, localLinks, crawl, withBrowserLogs };
