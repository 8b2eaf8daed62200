"use strict";
// Headless Chromium runs the official browser bundle in a page served from another origin than
// the hub, over each transport: CORS with credentials (preflight included, since the client sends
// X-Requested-With and X-SignalR-User-Agent) is exercised for real.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");

const { startTestServer } = require("../../node/lib/server");
const { startPageServer } = require("../lib/static-server");
const { launchChromium } = require("../lib/chromium");

/** Sends an OPTIONS request with the given headers (node:http, so Origin can be set). */
function preflight(url, headers) {
    return new Promise((resolve, reject) => {
        const request = http.request(url, { method: "OPTIONS", headers, timeout: 15_000 }, (response) => {
            response.resume();
            response.on("end", () => resolve({ status: response.statusCode, headers: response.headers }));
        });
        request.on("timeout", () => request.destroy(new Error("OPTIONS timed out")));
        request.on("error", reject);
        request.end();
    });
}

const TRANSPORTS = ["WebSockets", "ServerSentEvents", "LongPolling"];
const TEST_TIMEOUT = { timeout: 60_000 };

let hub;
let page;
let browser;
before(async () => {
    hub = await startTestServer();
    page = await startPageServer();
    browser = await launchChromium();
});
after(async () => {
    if (browser) {
        await browser.close();
    }
    if (page) {
        await page.close();
    }
    if (hub) {
        await hub.stop();
    }
});

describe("official browser client in Chromium, page on another origin", () => {
    for (const transport of TRANSPORTS) {
        it(`connects over ${transport} with credentials, invokes Echo, receives Message`, TEST_TIMEOUT, async () => {
            assert.notEqual(new URL(page.url).origin, new URL(hub.url).origin, "the page and the hub differ in origin");
            const tab = await browser.context.newPage();
            const pageErrors = [];
            tab.on("pageerror", (err) => pageErrors.push(String(err)));
            const negotiates = [];
            tab.on("response", (response) => {
                if (response.url().startsWith(`${hub.url}/testhub/negotiate`)) {
                    // allHeaders() includes what the network stack added (Origin, CORS answers).
                    negotiates.push(Promise.all([response.allHeaders(), response.request().allHeaders()])
                        .then(([headers, requestHeaders]) => ({
                            status: response.status(), headers, origin: requestHeaders.origin,
                        })));
                }
            });
            try {
                await tab.goto(`${page.url}/`);
                const result = await tab.evaluate(
                    ({ hubUrl, name }) => window.runScenario(hubUrl, name),
                    { hubUrl: `${hub.url}/testhub`, name: transport });

                assert.equal(result.error, undefined, `scenario failed in the page: ${result.error}`);
                assert.deepEqual(pageErrors, []);
                assert.equal(result.echo, "héllo from the browser ☃");
                assert.equal(result.message, "pushed to the browser");
                assert.equal(result.transport, transport);
                assert.match(result.connectionId, /^[A-Za-z0-9_-]{22}$/);
                assert.equal(result.serverConnectionId, result.connectionId);
                assert.equal(result.cookie, "testValue",
                    "the negotiate cookie came back with the hub request: credentials crossed origins");
                assert.equal(result.closeError, null, "stop() closes without an error");
                if (transport === "LongPolling") {
                    assert.match(String(result.userAgentHeader), /^Microsoft SignalR\/10\.0 \(10\.0\.11; /,
                        "the browser client's X-SignalR-User-Agent reaches GetHeader over long polling");
                } else {
                    assert.equal(result.userAgentHeader, null,
                        "a browser cannot set headers on a WebSocket or EventSource request");
                }

                assert.equal(negotiates.length, 1, "one negotiate from the page");
                const negotiate = await negotiates[0];
                assert.equal(negotiate.status, 200);
                assert.equal(negotiate.origin, page.url, "the browser sent the page's Origin");
                assert.equal(negotiate.headers["access-control-allow-origin"], page.url,
                    "the hub echoes the Origin (not *) for a credentialed request");
                assert.equal(negotiate.headers["access-control-allow-credentials"], "true");
            } finally {
                await tab.close();
            }
        });
    }

    it("the hub answers the CORS preflight of negotiate (status and echoed headers)", TEST_TIMEOUT, async () => {
        // What Chromium sends before the credentialed negotiate POST, replayed to read the answer.
        const response = await preflight(`${hub.url}/testhub/negotiate?negotiateVersion=1`, {
            Origin: page.url,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-requested-with,x-signalr-user-agent",
        });
        assert.equal(response.status, 204);
        assert.equal(response.headers["access-control-allow-origin"], page.url);
        assert.equal(response.headers["access-control-allow-credentials"], "true");
        const allowedHeaders = (response.headers["access-control-allow-headers"] || "").toLowerCase();
        assert.match(allowedHeaders, /x-requested-with/);
        assert.match(allowedHeaders, /x-signalr-user-agent/);
        const allowedMethods = (response.headers["access-control-allow-methods"] || "").toUpperCase();
        assert.match(allowedMethods, /POST/);
    });
});
