"use strict";
// Debian's chromium (/usr/bin/chromium) through playwright-core, never a downloaded browser:
// headless, with the flags this machine needs and a throw-away profile per browser, so two
// browsers share no cookies (cookies ignore the port, and both web nodes are on 127.0.0.1).

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const EXECUTABLE = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/** Starts a browser with its own temp profile; resolves with { context, page, close, console }. */
async function launchBrowser(name) {
    if (!fs.existsSync(EXECUTABLE)) {
        throw new Error(`chromium not found at ${EXECUTABLE}; install it with \`apt-get install -y chromium\``);
    }
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), `diquis-e2e-chromium-${name}-`));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: EXECUTABLE,
        headless: true,
        args: FLAGS,
        timeout: 60_000,
    });
    const page = context.pages()[0] || (await context.newPage());
    const consoleLines = [];
    page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
    return {
        name,
        context,
        page,
        console: consoleLines,
        async close() {
            await context.close().catch(() => {});
            fs.rmSync(userDataDir, { recursive: true, force: true });
        },
    };
}

module.exports = { launchBrowser, EXECUTABLE };
