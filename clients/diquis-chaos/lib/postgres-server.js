"use strict";
// A PostgreSQL instance of the suite's own (never the machine's shared one): Debian's initdb
// and pg_ctl run as the `postgres` user on a free port, data in a temp dir, trust auth on
// 127.0.0.1 only. It can be stopped and started again on the same port and data.

const { execFile } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

/** Debian's server binaries (the newest installed major version). */
function serverBinDir() {
    if (process.env.CHAOS_PG_BINDIR) return process.env.CHAOS_PG_BINDIR;
    const base = "/usr/lib/postgresql";
    const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
    for (const v of versions) {
        const dir = path.join(base, v, "bin");
        if (fs.existsSync(path.join(dir, "pg_ctl"))) return dir;
    }
    throw new Error(`no PostgreSQL server binaries under ${base} (install the Debian package postgresql)`);
}

/** Runs `binary args` as the postgres user (directly when already that user). */
function runAsPostgres(binary, args, what) {
    const asRoot = process.getuid && process.getuid() === 0;
    const [cmd, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", binary, ...args]] : [binary, args];
    return new Promise((resolve, reject) => {
        execFile(cmd, argv, { timeout: 60_000 }, (error, stdout, stderr) => {
            if (error) reject(new Error(`${what} failed: ${stderr || stdout || error.message}`));
            else resolve(stdout);
        });
    });
}

class PostgresServer {
    constructor(port) {
        this.port = port;
        this.bin = serverBinDir();
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "diquis-chaos-pg-"));
        this.data = path.join(this.dir, "data");
        this.logFile = path.join(this.dir, "postgres.log");
        this.running = false;
    }

    /** Creates the cluster (initdb) and starts it. */
    async init() {
        fs.chmodSync(this.dir, 0o755);
        if (process.getuid && process.getuid() === 0) {
            const { uid, gid } = postgresIds();
            fs.chownSync(this.dir, uid, gid);
        }
        await runAsPostgres(path.join(this.bin, "initdb"), ["-D", this.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], "initdb");
        await this.start();
    }

    /** Starts the server and waits until it accepts connections. */
    async start() {
        const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`;
        await runAsPostgres(path.join(this.bin, "pg_ctl"), ["-D", this.data, "-l", this.logFile, "-o", options, "-w", "-t", "60", "start"], "pg_ctl start");
        this.running = true;
    }

    /** Stops the server (`fast`: connections are closed, as an operator's stop does). */
    async stop(mode = "fast") {
        if (!this.running) return;
        await runAsPostgres(path.join(this.bin, "pg_ctl"), ["-D", this.data, "-m", mode, "-w", "-t", "60", "stop"], "pg_ctl stop");
        this.running = false;
    }

    /** Stops the server and removes its data. */
    async destroy() {
        try {
            await this.stop("immediate");
        } finally {
            fs.rmSync(this.dir, { recursive: true, force: true });
        }
    }

    /** The last lines of the server log. */
    tail(n = 20) {
        try {
            return fs.readFileSync(this.logFile, "utf8").split("\n").slice(-n).map((l) => `  [postgres] ${l}`).join("\n");
        } catch {
            return "";
        }
    }
}

function postgresIds() {
    const line = fs.readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"));
    if (!line) throw new Error("no postgres user on this machine (install the Debian package postgresql)");
    const [, , uid, gid] = line.split(":");
    return { uid: Number(uid), gid: Number(gid) };
}

module.exports = { PostgresServer };
