// Headless Chromium (Debian's, through playwright-core) on the web UI of two web nodes sharing
// PostgreSQL and Redis: sign in, create a tenant, see the toast and the row turn Active with no
// reload; a second browser on the other node sees the same. The seed document's script, pasted
// unchanged into a page (/seed-demo), connects with the session cookie and reacts to the event.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { chromium } = require("playwright-core");
const h = require("./helpers");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let redis, db, webA, webB, jobs, browser;

before(async () => {
  redis = await h.startRedis();
  db = h.freshDatabase();
  webA = await h.startDiquis("web", { db, redis });
  webB = await h.startDiquis("web", { db, redis });
  jobs = await h.startDiquis("jobs", { db, redis });
  for (const n of [webA, webB, jobs]) await h.ready(n);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
});

after(async () => {
  if (browser) await browser.close();
  for (const n of [webA, webB, jobs]) if (n) await h.stopDiquis(n);
  if (redis) await redis.stop();
  if (db) db.drop();
});

async function signedInPage(url, path = "/tenants") {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${url}${path}`);
  assert.match(page.url(), /\/login\?returnUrl=/);
  await page.fill("#email", h.ADMIN_EMAIL);
  await page.fill("#password", h.ADMIN_PASSWORD);
  await Promise.all([page.waitForURL(`${url}${path}`), page.click("#sign-in")]);
  return { page, context, errors };
}

test("create a tenant in one browser; both browsers see it turn Active without a reload", async () => {
  const a = await signedInPage(webA.url);
  const b = await signedInPage(webB.url);
  for (const { page } of [a, b]) {
    await page.waitForFunction(() => window.diquisConnected === true);
    await page.evaluate(() => { window.__sameDocument = true; });
  }

  await a.page.fill("#id", "browser-fc");
  await a.page.fill("#name", "Browser FC");
  await a.page.fill("#adminEmail", "owner@browser.test");
  await a.page.fill("#password", "Owner1Passw0rd");
  await a.page.click("#create-tenant");

  for (const { page } of [a, b]) {
    await page.waitForSelector('#tenant-browser-fc[data-status="Active"]', { timeout: 90000 });
    await page.waitForSelector(".toast-success", { timeout: 30000 });
    const toast = await page.textContent(".toast-success");
    assert.match(toast, /Tenant 'Browser FC' has been created successfully!/);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "no page reload");
    assert.match(await page.textContent("#tenant-browser-fc .badge"), /Active/);
  }
  // Edit through the form: the row shows Updating, then the event turns it Active again.
  await a.page.click('#tenant-browser-fc a:has-text("Edit")');
  await a.page.fill("#name", "Browser United");
  await Promise.all([a.page.waitForURL(`${webA.url}/tenants`), a.page.click("#save-tenant")]);
  await b.page.waitForSelector('#tenant-browser-fc[data-status="Active"] >> text=Browser United', { timeout: 90000 });
  assert.equal(await b.page.evaluate(() => window.__sameDocument), true, "no page reload on the other node");
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.context.close();
  await b.context.close();
});

test("the seed document's script works unchanged on a page, authenticated by the session cookie", async () => {
  const { page, context, errors } = await signedInPage(webB.url, "/seed-demo");
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  // The page was loaded before the listener; reload once to capture the connect log from the start.
  await page.reload();
  await h.until(() => logs.some((l) => l.includes("SignalR connected")), "the seed script connects");
  const root = await h.login(webA.url, h.ADMIN_EMAIL, h.ADMIN_PASSWORD);
  const reloaded = page.waitForEvent("load", { timeout: 90000 });
  const r = await h.api("POST", `${webA.url}/api/tenants`, root, h.newTenant("seed-page"));
  assert.equal(r.status, 202);
  await reloaded; // the seed script calls location.reload() on TenantCreated
  assert.ok(logs.some((l) => l.startsWith("? Tenant created:")), logs.join("\n"));
  assert.deepEqual(errors, []);
  await context.close();
});
