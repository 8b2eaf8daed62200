"use strict";
// The raw `/echo` connection handler (no hub protocol) through the client's HttpConnection:
// negotiate sets `testCookie`, the client's cookie jar sends it back, and the server echoes bytes.

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { HttpConnection } = require("@microsoft/signalr/dist/cjs/HttpConnection");

const { startTestServer } = require("../lib/server");
const { TRANSPORTS, deferred, logger, transportName, within, signalR } = require("../lib/client");

const { TransferFormat } = signalR;
const TEST_TIMEOUT = { timeout: 40_000 };

let server;
before(async () => {
    server = await startTestServer();
});
after(async () => {
    if (server) {
        await server.stop();
    }
});

describe("/echo connection handler", () => {
    const open = [];
    afterEach(async () => {
        await Promise.allSettled(open.splice(0).map((c) => c.stop()));
    });

    for (const transport of TRANSPORTS) {
        it(`echoes "Hello World!" over ${transportName(transport)} and closes cleanly`, TEST_TIMEOUT, async () => {
            const connection = new HttpConnection(`${server.url}/echo`, { transport, logger, logMessageContent: true });
            open.push(connection);
            const received = deferred();
            const closedWith = deferred();
            connection.onreceive = (data) => received.resolve(data);
            connection.onclose = (error) => closedWith.resolve(error);

            await within(connection.start(TransferFormat.Text), "HttpConnection.start()");
            assert.match(connection.connectionId, /^[A-Za-z0-9_-]{22}$/);
            await within(connection.send("Hello World!"), "send()");
            assert.equal(await within(received.promise, "the echo"), "Hello World!");

            await within(connection.stop(), "stop()");
            assert.equal(await within(closedWith.promise, "onclose"), undefined, "closes without an error");
        });
    }

    it("echoes several messages in order over WebSockets", TEST_TIMEOUT, async () => {
        const connection = new HttpConnection(`${server.url}/echo`, {
            transport: signalR.HttpTransportType.WebSockets, logger,
        });
        open.push(connection);
        const expected = Array.from({ length: 20 }, (_, i) => `message ${i};`);
        let text = "";
        const all = deferred();
        connection.onreceive = (data) => {
            text += data;
            if (text.length >= expected.join("").length) {
                all.resolve(text);
            }
        };
        await within(connection.start(TransferFormat.Text), "HttpConnection.start()");
        for (const message of expected) {
            await within(connection.send(message), "send()");
        }
        assert.equal(await within(all.promise, "all echoes"), expected.join(""));
        await within(connection.stop(), "stop()");
    });
});
