"use strict";
// Starts the `signalr-testserver` binary on a free port and stops it again.
//
// The binary comes from $SIGNALR_TESTSERVER, else <repo>/target/release/signalr-testserver.
// The server prints `Now listening on: http://127.0.0.1:PORT` once it accepts connections;
// we wait for that line (bounded by a deadline), never for a fixed time.

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
const DEFAULT_BINARY = path.join(REPO_ROOT, "target", "release", "signalr-testserver");
const LISTENING = /Now listening on:\s*(http:\/\/\S+)/;
const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 5_000;

/** Path of the server binary under test. */
function serverBinary() {
    return process.env.SIGNALR_TESTSERVER || DEFAULT_BINARY;
}

/**
 * Starts the test server and resolves with `{ url, stop, output, exited, isRunning }` once it
 * listens. `extraArgs` are appended after `--urls` (e.g. `["--redis", "127.0.0.1:6390",
 * "--channel-prefix", "p"]` for a backplane node).
 */
function startTestServer(extraArgs = []) {
    const binary = serverBinary();
    if (!fs.existsSync(binary)) {
        return Promise.reject(new Error(
            `signalr-testserver binary not found at ${binary}; build it with ` +
            "`cargo build --release -p signalr-testserver` or set SIGNALR_TESTSERVER"));
    }
    const child = spawn(binary, ["--urls", "http://127.0.0.1:0", ...extraArgs], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
    });
    // The last lines of output, shown when start fails.
    const output = [];
    const remember = (line) => {
        output.push(line);
        if (output.length > 200) {
            output.shift();
        }
        if (process.env.SIGNALR_SERVER_LOG) {
            process.stderr.write(`[testserver] ${line}\n`);
        }
    };
    const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));

    return new Promise((resolve, reject) => {
        let settled = false;
        const fail = (message) => {
            if (settled) {
                return;
            }
            settled = true;
            clearTimeout(deadline);
            child.kill("SIGKILL");
            reject(new Error(`${message}\n--- testserver output ---\n${output.join("\n")}`));
        };
        const deadline = setTimeout(
            () => fail(`signalr-testserver did not print "Now listening on:" within ${START_DEADLINE_MS} ms`),
            START_DEADLINE_MS);
        const onLine = (line) => {
            remember(line);
            const match = LISTENING.exec(line);
            if (match && !settled) {
                settled = true;
                clearTimeout(deadline);
                const url = match[1].replace(/\/+$/, "");
                resolve({
                    url,
                    output,
                    stop: () => stopChild(child, exited),
                    // Resolves with { code, signal } when the process ends (e.g. a crash).
                    exited,
                    isRunning: () => child.exitCode === null && child.signalCode === null,
                });
            }
        };
        readline.createInterface({ input: child.stdout }).on("line", onLine);
        readline.createInterface({ input: child.stderr }).on("line", onLine);
        child.once("error", (err) => fail(`could not start ${binary}: ${err.message}`));
        exited.then(({ code, signal }) => fail(`signalr-testserver exited early (code ${code}, signal ${signal})`));
    });
}

async function stopChild(child, exited) {
    if (child.exitCode !== null || child.signalCode !== null) {
        return exited;
    }
    child.kill("SIGTERM");
    let timer;
    const forced = new Promise((resolve) => {
        timer = setTimeout(() => {
            child.kill("SIGKILL");
            resolve();
        }, STOP_DEADLINE_MS);
    });
    await Promise.race([exited, forced]);
    clearTimeout(timer);
    return exited;
}

module.exports = { startTestServer, serverBinary, REPO_ROOT };
