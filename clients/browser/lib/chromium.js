"use strict";
// Launches Debian's chromium through playwright-core (never a downloaded browser), headless, with
// a throw-away profile directory.

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

/** Resolves with { context, close } for a fresh persistent context in a temp profile. */
async function launchChromium() {
    if (!fs.existsSync(EXECUTABLE)) {
        throw new Error(`chromium not found at ${EXECUTABLE}; install it with \`apt-get install -y chromium\``);
    }
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "signalr-chromium-"));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: EXECUTABLE,
        headless: true,
        args: FLAGS,
        timeout: 60_000,
    });
    return {
        context,
        async close() {
            await context.close();
            fs.rmSync(userDataDir, { recursive: true, force: true });
        },
    };
}

module.exports = { launchChromium };
