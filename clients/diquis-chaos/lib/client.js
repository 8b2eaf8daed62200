"use strict";
// A hub connection as the page script keeps it (crates/diquis/web/static/diquis.js): the
// official @microsoft/signalr client with automatic reconnect (retrying for as long as it
// takes), a catch-up with GET /api/notifications?after=<last id> after every reconnect, and
// repeats dropped by the notification's `id`. It records what the page would show (each id
// once) and, apart, every copy that arrived (for the repeat counts).

const signalR = require("../../diquis-e2e/node_modules/@microsoft/signalr");
const api = require("../../diquis-e2e/lib/api");
const { TENANT_EVENTS, CONNECTED_MESSAGE } = require("../../diquis-e2e/lib/hub");
const { deferred, within } = require("../../diquis-e2e/lib/wait");

const { HubConnectionBuilder, HttpTransportType, LogLevel } = signalR;

const logger = {
    level: LogLevel[process.env.SIGNALR_CLIENT_LOG || "None"] ?? LogLevel.None,
    log(level, message) {
        if (level >= this.level) process.stderr.write(`[client ${LogLevel[level]}] ${message}\n`);
    },
};

class ChaosClient {
    /** `base`: where the client connects (a web node or the suite's fail-over proxy). */
    constructor(name, base, token) {
        this.name = name;
        this.base = base;
        this.token = token;
        this.shown = new Map(); // id -> { target, data, via }
        this.copies = new Map(); // id -> number of copies received (live and catch-up)
        this.lastId = 0;
        this.startId = 0;
        this.reconnects = 0;
        this.catchUps = 0;
        this.closed = null;
        this.errors = [];
    }

    record(target, data, via) {
        if (!data || typeof data.id !== "number") return;
        this.copies.set(data.id, (this.copies.get(data.id) || 0) + 1);
        if (this.shown.has(data.id)) return;
        this.shown.set(data.id, { target, data, via });
        if (data.id > this.lastId) this.lastId = data.id;
    }

    /** Connects; events after the notifications existing now are what it must show. */
    async start() {
        this.startId = await latestId(this.base, this.token);
        this.lastId = this.startId;
        const connection = new HubConnectionBuilder()
            .withUrl(`${this.base}/hubs/notifications`, { accessTokenFactory: () => this.token, transport: HttpTransportType.WebSockets, logger })
            .withAutomaticReconnect({ nextRetryDelayInMilliseconds: (ctx) => (ctx.previousRetryCount === 0 ? 0 : 500) })
            .configureLogging(logger)
            .build();
        this.connection = connection;
        for (const target of TENANT_EVENTS) connection.on(target, (data) => this.record(target, data, "live"));
        const greeted = deferred();
        connection.on("Connected", (message) => greeted.resolve(message));
        connection.onreconnected(() => {
            this.reconnects++;
            this.catchUp().catch((e) => this.errors.push(`catch-up after reconnect: ${e.message}`));
        });
        connection.onclose((error) => {
            this.closed = error ? String(error) : "closed";
        });
        await within(connection.start(), `${this.name} to connect to ${this.base}`);
        const greeting = await within(greeted.promise, `${this.name} to be greeted`);
        if (greeting !== CONNECTED_MESSAGE) throw new Error(`${this.name}: unexpected greeting ${greeting}`);
        // Whatever was stored between reading the start id and joining the hub.
        await this.catchUp();
    }

    /** GET /api/notifications?after=<last id shown>, every page, through the client's base URL. */
    async catchUp() {
        this.catchUps++;
        const missed = await api.allNotifications(this.base, this.token, this.lastId);
        for (const n of missed) this.record(n.event, n.data, "catch-up");
    }

    /** Ids shown after the start, ascending. */
    shownIds() {
        return [...this.shown.keys()].filter((id) => id > this.startId).sort((a, b) => a - b);
    }

    /** How many ids arrived more than once (dropped as repeats). */
    repeats() {
        let n = 0;
        for (const count of this.copies.values()) if (count > 1) n++;
        return n;
    }

    async stop() {
        if (this.connection) await this.connection.stop().catch(() => {});
    }
}

/** The highest notification id visible to `token` now (0 when none). */
async function latestId(base, token) {
    const all = await api.allNotifications(base, token, 0);
    return all.length ? all[all.length - 1].id : 0;
}

module.exports = { ChaosClient, latestId };
