"use strict";
// A small TCP proxy in front of the test server that can cut the WebSocket it carries in the
// middle of the server's byte stream, without a close frame, like a dropped network link.

const net = require("node:net");
const { EventEmitter } = require("node:events");

/**
 * Listens on 127.0.0.1:0 and forwards every connection to `target` (an http://host:port URL).
 * Events: "upgrade" (pair) when a connection switches to WebSocket, "cut" (pair) after a cut.
 */
class CuttingProxy extends EventEmitter {
    constructor(target) {
        super();
        const { hostname, port } = new URL(target);
        this.targetHost = hostname;
        this.targetPort = Number(port);
        this.pairs = new Set();
        this.upgrades = 0;
        this.cutPlan = null;
        this.holding = false;
        this.held = [];
        this.server = net.createServer((client) => {
            if (this.holding) {
                // Keep the TCP connection open but unanswered until release(), like a link that is
                // still down: the client's reconnect attempt waits, its bytes stay buffered.
                client.pause();
                this.held.push(client);
                this.emit("held", client);
            } else {
                this._accept(client);
            }
        });
    }

    /** Starts listening; resolves with the proxy's base URL. */
    listen() {
        return new Promise((resolve, reject) => {
            this.server.once("error", reject);
            this.server.listen(0, "127.0.0.1", () => {
                this.url = `http://127.0.0.1:${this.server.address().port}`;
                resolve(this.url);
            });
        });
    }

    /**
     * Arms a cut: once the current WebSocket has carried `afterBytes` more bytes from the server,
     * the proxy forwards only part of the chunk that crosses the mark and destroys both sockets.
     * With `holdAfterCut`, new connections are held (see hold()) from the moment of the cut, so the
     * client's reconnect waits until release(). Resolves when the cut happened.
     */
    cutWebSocketAfter(afterBytes, { holdAfterCut = false } = {}) {
        return new Promise((resolve) => {
            this.cutPlan = { remaining: afterBytes, holdAfterCut, resolve };
        });
    }

    /** From now on, new connections wait until release(). */
    hold() {
        this.holding = true;
    }

    /** Lets held and future connections through to the server. */
    release() {
        this.holding = false;
        for (const client of this.held.splice(0)) {
            this._accept(client);
        }
    }

    _accept(client) {
        const upstream = net.connect(this.targetPort, this.targetHost);
        const pair = { client, upstream, isWebSocket: false, requestHead: "" };
        this.pairs.add(pair);
        const drop = () => {
            client.destroy();
            upstream.destroy();
            this.pairs.delete(pair);
        };
        client.on("error", drop);
        upstream.on("error", drop);
        client.on("close", drop);
        upstream.on("close", drop);

        client.on("data", (chunk) => {
            if (!pair.isWebSocket && pair.requestHead.length < 8192) {
                pair.requestHead += chunk.toString("latin1");
                if (/\r\nupgrade:\s*websocket/i.test(pair.requestHead)) {
                    pair.isWebSocket = true;
                    this.upgrades += 1;
                    this.emit("upgrade", pair);
                }
            }
            upstream.write(chunk);
        });
        upstream.on("data", (chunk) => {
            const plan = this.cutPlan;
            if (pair.isWebSocket && plan) {
                if (chunk.length > plan.remaining) {
                    // Forward the head of this chunk only, so a frame is torn in the middle.
                    const keep = Math.max(1, plan.remaining);
                    this.cutPlan = null;
                    if (plan.holdAfterCut) {
                        this.hold();
                    }
                    client.write(chunk.subarray(0, Math.min(keep, chunk.length - 1)), () => {
                        drop();
                        this.emit("cut", pair);
                        plan.resolve();
                    });
                    return;
                }
                plan.remaining -= chunk.length;
            }
            client.write(chunk);
        });
        // A held socket was paused explicitly; adding a "data" listener does not resume it.
        client.resume();
    }

    /** Closes the listener and every forwarded connection. */
    close() {
        for (const client of this.held.splice(0)) {
            client.destroy();
        }
        for (const pair of this.pairs) {
            pair.client.destroy();
            pair.upstream.destroy();
        }
        this.pairs.clear();
        return new Promise((resolve) => this.server.close(() => resolve()));
    }
}

module.exports = { CuttingProxy };
