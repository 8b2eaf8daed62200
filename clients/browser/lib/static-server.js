"use strict";
// A tiny static server for the test page, on its own port: the page's origin differs from the
// hub's, so every SignalR request from the page is cross-origin (CORS with credentials).

const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..");
const FILES = {
    "/": { file: path.join(ROOT, "page", "index.html"), type: "text/html; charset=utf-8" },
    "/scenario.js": { file: path.join(ROOT, "page", "scenario.js"), type: "text/javascript; charset=utf-8" },
    "/signalr.js": {
        file: path.join(ROOT, "node_modules", "@microsoft", "signalr", "dist", "browser", "signalr.js"),
        type: "text/javascript; charset=utf-8",
    },
};

/** Starts the page server on 127.0.0.1:0; resolves with { url, close }. */
function startPageServer() {
    const server = http.createServer((req, res) => {
        const entry = FILES[new URL(req.url, "http://x").pathname];
        if (!entry || req.method !== "GET") {
            res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
            return;
        }
        fs.readFile(entry.file, (err, body) => {
            if (err) {
                res.writeHead(500, { "Content-Type": "text/plain" }).end(String(err));
                return;
            }
            res.writeHead(200, { "Content-Type": entry.type, "Cache-Control": "no-store" }).end(body);
        });
    });
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            resolve({
                url: `http://127.0.0.1:${server.address().port}`,
                close: () => new Promise((done) => {
                    server.closeAllConnections();
                    server.close(() => done());
                }),
            });
        });
    });
}

module.exports = { startPageServer };
