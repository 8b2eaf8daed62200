"use strict";
// The machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth) through the psql client:
// a fresh database per suite (random name, dropped afterwards with everything derived from it),
// queries for checks, and a session that holds a lock to pause a job at a known point.

const { execFile, spawn } = require("node:child_process");
const { randomSuffix, deferred, within } = require("./wait");

const HOST = process.env.E2E_PGHOST || "127.0.0.1";
const PORT = process.env.E2E_PGPORT || "5432";
const USER = process.env.E2E_PGUSER || "postgres";

function psqlArgs(database) {
    return ["-h", HOST, "-p", PORT, "-U", USER, "-d", database, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t"];
}

function psqlEnv() {
    const env = { ...process.env };
    for (const k of Object.keys(env)) {
        if (k.startsWith("PG")) delete env[k];
    }
    return env;
}

/** Runs `sql` in `database`; resolves with the result rows, each an array of column strings. */
function query(database, sql) {
    return new Promise((resolve, reject) => {
        execFile("psql", [...psqlArgs(database), "-c", sql], { env: psqlEnv() }, (error, stdout, stderr) => {
            if (error) {
                reject(new Error(`psql on ${database} failed: ${stderr || error.message}\nSQL: ${sql}`));
                return;
            }
            const lines = stdout.split("\n").filter((l) => l.length > 0);
            resolve(lines.map((l) => l.split("\t")));
        });
    });
}

/** The first column of the first row, or undefined. */
async function scalar(database, sql) {
    const rows = await query(database, sql);
    return rows.length > 0 ? rows[0][0] : undefined;
}

/** Quotes an identifier. */
function ident(name) {
    return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes a literal. */
function literal(value) {
    return `'${String(value).replace(/'/g, "''")}'`;
}

/** Creates a database with a random name starting with `prefix`; resolves with the name. */
async function createDatabase(prefix = "diquis_e2e") {
    const name = `${prefix}_${randomSuffix(10)}`;
    await query("postgres", `CREATE DATABASE ${ident(name)}`);
    return name;
}

/**
 * Drops `name` and every database derived from it (isolated tenant databases are named
 * `<main>-<tenant>`), closing their connections first.
 */
async function dropDatabaseFamily(name) {
    const rows = await query(
        "postgres",
        `SELECT datname FROM pg_database WHERE datname = ${literal(name)} OR starts_with(datname, ${literal(name + "-")})`,
    );
    for (const [db] of rows) {
        await query("postgres", `DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`);
    }
}

/**
 * An open psql session that ran `statements` inside a transaction and keeps it open (so its
 * locks are held) until release(). Resolves once the statements have run.
 */
async function holdTransaction(database, statements) {
    const child = spawn("psql", [...psqlArgs(database)], { env: psqlEnv(), stdio: ["pipe", "pipe", "pipe"] });
    const ready = deferred();
    const exited = deferred();
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
        out += d.toString();
        if (out.includes("E2E_LOCK_HELD")) ready.resolve();
    });
    child.stderr.on("data", (d) => {
        err += d.toString();
    });
    child.on("exit", (code) => {
        ready.reject(new Error(`psql exited (${code}) before holding the lock: ${err}`));
        exited.resolve(code);
    });
    child.stdin.write(`BEGIN;\n${statements}\n\\echo E2E_LOCK_HELD\n`);
    await within(ready.promise, `a psql session on ${database} to run: ${statements}`);
    return {
        /** Ends the transaction (rollback) and the session. */
        async release() {
            child.stdin.write("ROLLBACK;\n\\q\n");
            child.stdin.end();
            await within(exited.promise, "the lock-holding psql session to exit");
        },
    };
}

module.exports = { query, scalar, ident, literal, createDatabase, dropDatabaseFamily, holdTransaction, HOST, PORT, USER };
