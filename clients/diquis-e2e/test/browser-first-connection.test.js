"use strict";
// The first hub connection to a node that sat quiet longer than the handshake timeout connects
// (issue 17, point 1: "Handshake was canceled" for every node's first user after a quiet spell).
// In Chromium, as the user met it: `diquis` alone with SignalR:HandshakeTimeout at 1 s, nobody
// connected to the hub until the node has been up for longer than that, then the tenant page's
// own script connects on its first try.

const { describe, test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { DiquisProcess, ROOT_EMAIL, ROOT_PASSWORD } = require("../lib/diquis");
const { launchBrowser } = require("../lib/chromium");
const { until } = require("../lib/wait");
const { signIn, waitLive } = require("../lib/ui");

const HANDSHAKE_TIMEOUT_MS = 1_000;

describe("browser, one process: the first hub connection after a quiet spell", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "diquis-e2e-first-connection-"));
    let proc;
    let browser;

    after(async () => {
        if (browser) await browser.close();
        if (proc) await proc.stop();
        if (!process.env.E2E_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
    });

    test("the tenant page connects on its first try, longer than the handshake timeout after the start", { timeout: 180_000 }, async () => {
        proc = new DiquisProcess({
            name: "diquis",
            role: "",
            env: {
                Urls: "http://127.0.0.1:0",
                Seed__AdminEmail: ROOT_EMAIL,
                Seed__AdminPassword: ROOT_PASSWORD,
                SignalR__HandshakeTimeout: "00:00:01",
            },
            workDir: dir,
            logFile: path.join(dir, "diquis.log"),
        });
        try {
            await proc.start();
            const listening = Date.now();
            await proc.waitReady();
            browser = await launchBrowser("first-connection");
            // The precondition of the bug: the hub has had no connection for longer than its
            // handshake timeout since the process started listening.
            await until(() => Date.now() - listening > HANDSHAKE_TIMEOUT_MS * 2, "the node to have been up twice the handshake timeout", { every: 50 });
            await signIn(browser, proc.url, { email: ROOT_EMAIL, password: ROOT_PASSWORD });
            await waitLive(browser);
            const failures = browser.console.filter((l) => /hub connection failed|Handshake was canceled|pageerror/i.test(l));
            assert.deepEqual(failures, [], "the first start() of the page's connection succeeded");
            assert.match(await browser.page.locator("#hub-status").innerText(), /live|connected/i);
        } catch (e) {
            if (browser) e.message += `\n--- console ---\n${browser.console.slice(-30).join("\n")}`;
            e.message += `\n${proc.tail()}`;
            throw e;
        }
    });
});
