"use strict";
// Points the shared e2e helpers (clients/diquis-e2e/lib/postgres.js reads E2E_PG* when loaded)
// at the suite's own PostgreSQL instance: a free port is chosen here, before they are loaded,
// unless CHAOS_PGPORT names one. Require this module first.

const { execFileSync } = require("node:child_process");

if (!process.env.CHAOS_PGPORT) {
    const script = "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close();});";
    process.env.CHAOS_PGPORT = execFileSync(process.execPath, ["-e", script]).toString().trim();
}
process.env.E2E_PGHOST = "127.0.0.1";
process.env.E2E_PGPORT = process.env.CHAOS_PGPORT;
process.env.E2E_PGUSER = "postgres";

module.exports = { pgPort: Number(process.env.CHAOS_PGPORT) };
