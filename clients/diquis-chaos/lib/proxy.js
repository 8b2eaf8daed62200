"use strict";
// A small TCP proxy of the suite, for two faults that need the network between processes:
//   * a cut that stops forwarding without closing anything (no RST, no FIN): both directions
//     simply stop moving, as when a link or a firewall drops packets, then resume;
//   * fail-over: each new connection goes to the first target that accepts it, so clients of
//     a killed web node reconnect (the official client's automatic reconnect) to the other one.

const net = require("node:net");
const { deferred, within } = require("../../diquis-e2e/lib/wait");

class TcpProxy {
    /** `targets`: ports on 127.0.0.1, tried in order for every new connection. */
    constructor(name, targets) {
        this.name = name;
        this.targets = targets;
        this.pairs = new Set();
        this.cut = false;
        this.waiting = [];
        this.accepted = 0;
    }

    /** Listens on a free port of 127.0.0.1 (or `port`); resolves with it. */
    async start(port = 0) {
        this.server = net.createServer((client) => this.onClient(client));
        const listening = deferred();
        this.server.once("error", listening.reject);
        this.server.listen(port, "127.0.0.1", () => listening.resolve());
        await within(listening.promise, `proxy ${this.name} to listen`);
        this.port = this.server.address().port;
        return this.port;
    }

    onClient(client) {
        this.accepted++;
        client.setNoDelay(true);
        client.pause();
        client.on("error", () => {});
        if (this.cut) {
            // Accepted by the kernel, but nothing moves until the cut ends.
            this.waiting.push(client);
            return;
        }
        this.connect(client, 0);
    }

    connect(client, index) {
        if (client.destroyed) return;
        if (index >= this.targets.length) {
            client.destroy();
            return;
        }
        const upstream = net.connect(this.targets[index], "127.0.0.1");
        upstream.setNoDelay(true);
        upstream.pause();
        let opened = false;
        upstream.once("connect", () => {
            opened = true;
            this.link(client, upstream);
        });
        upstream.on("error", () => {
            if (!opened) this.connect(client, index + 1);
            else client.destroy();
        });
    }

    link(client, upstream) {
        const pair = { client, upstream };
        this.pairs.add(pair);
        const forward = (from, to) => {
            from.on("data", (chunk) => {
                if (!to.write(chunk)) from.pause();
            });
            to.on("drain", () => {
                if (!this.cut) from.resume();
            });
            from.on("end", () => to.end());
            from.on("close", () => {
                to.destroy();
                this.pairs.delete(pair);
            });
        };
        forward(client, upstream);
        forward(upstream, client);
        if (!this.cut) {
            client.resume();
            upstream.resume();
        }
    }

    /** Stops forwarding in both directions; connections stay open (no RST, no FIN). */
    pause() {
        this.cut = true;
        for (const { client, upstream } of this.pairs) {
            client.pause();
            upstream.pause();
        }
    }

    /** Forwards again, including connections accepted during the cut. */
    resume() {
        this.cut = false;
        for (const { client, upstream } of this.pairs) {
            client.resume();
            upstream.resume();
        }
        const waiting = this.waiting.splice(0);
        for (const client of waiting) this.connect(client, 0);
    }

    /** Closes the listener and every connection. */
    async close() {
        for (const { client, upstream } of this.pairs) {
            client.destroy();
            upstream.destroy();
        }
        for (const client of this.waiting) client.destroy();
        if (this.server) await new Promise((resolve) => this.server.close(() => resolve()));
    }
}

module.exports = { TcpProxy };
