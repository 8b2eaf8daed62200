"use strict";
// Event-driven waiting: promises resolved by handlers, and conditions polled until a deadline.
// Nothing here sleeps for a fixed time and then asserts; every wait ends as soon as its condition
// holds, and fails with a message naming what was awaited when the deadline passes.

/** Default bound for one wait. */
const WAIT_MS = 30_000;

/** A promise with its resolve/reject exposed. */
function deferred() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
    });
    return { promise, resolve, reject };
}

/** Resolves like `promise`, or rejects once `ms` have passed, naming what was awaited. */
function within(promise, what, ms = WAIT_MS) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Calls `probe` until it returns a value other than undefined/false (which is returned), or the
 * deadline passes. `probe` may be async and may throw (a throw counts as "not yet" until the
 * deadline, then becomes part of the error).
 */
async function until(probe, what, { ms = WAIT_MS, every = 100 } = {}) {
    const deadline = Date.now() + ms;
    let lastError;
    for (;;) {
        try {
            const value = await probe();
            if (value !== undefined && value !== false && value !== null) {
                return value;
            }
        } catch (e) {
            lastError = e;
        }
        if (Date.now() >= deadline) {
            const detail = lastError ? ` (last error: ${lastError.message})` : "";
            throw new Error(`timed out after ${ms} ms waiting for ${what}${detail}`);
        }
        await new Promise((resolve) => setTimeout(resolve, every));
    }
}

/** A short random lower-case suffix for names (tenant ids, databases). */
function randomSuffix(length = 8) {
    const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    let s = "";
    const bytes = require("node:crypto").randomBytes(length);
    for (const b of bytes) s += alphabet[b % alphabet.length];
    return s;
}

module.exports = { WAIT_MS, deferred, within, until, randomSuffix };
