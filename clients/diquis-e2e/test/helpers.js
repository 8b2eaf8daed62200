// Shared helpers of the Diquis end-to-end tests: a private redis-server on a free port, a fresh
// PostgreSQL database, Diquis processes (`diquis web` / `diquis jobs`) started from the release
// binary, sign-in, and official-client hub connections that record what they receive.
"use strict";

const { spawn, spawnSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const signalR = require("@microsoft/signalr");

const ROOT = path.resolve(__dirname, "../../..");
const DIQUIS_BIN = process.env.DIQUIS_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "release", "diquis");
const ADMIN_EMAIL = "admin@e2e.test";
const ADMIN_PASSWORD = "E2eAdminPassw0rd";
const JWT_KEY = "e2e-signing-key-that-is-long-enough-0123456789";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

function redisAnswers(port) {
  const r = spawnSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" });
  return r.stdout.trim() === "PONG";
}

/** A redis-server of our own, on a free port, in a temp dir; can be stopped and started again. */
async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "diquis-e2e-redis-"));
  const redis = { port, proc: null };
  redis.start = async () => {
    redis.proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
    await until(() => redisAnswers(port), "redis-server answers");
  };
  redis.stop = async () => {
    if (!redis.proc) return;
    const exited = new Promise((r) => redis.proc.once("exit", r));
    redis.proc.kill("SIGKILL");
    await exited;
    redis.proc = null;
  };
  await redis.start();
  return redis;
}

/** Polls `check` (sync or async) until true; for readiness of external processes only. */
async function until(check, what, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function psql(db, sql) {
  const r = spawnSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc", sql], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** A fresh database name (Diquis creates it at start); `drop()` removes it and its tenants' ones. */
function freshDatabase() {
  const name = `diquis_e2e_${crypto.randomBytes(6).toString("hex")}`;
  return {
    name,
    connectionString: `Host=127.0.0.1;Port=5432;Database=${name};Username=postgres`,
    drop() {
      const names = psql("postgres", `SELECT datname FROM pg_database WHERE datname = '${name}' OR datname LIKE '${name}-%'`);
      for (const n of names.split("\n").filter(Boolean)) psql("postgres", `DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`);
    },
  };
}

/** Starts `diquis <role>` and resolves once it prints its URL. */
function startDiquis(role, { db, redis, env = {} }) {
  const args = role ? [role, "--urls", "http://127.0.0.1:0"] : ["--urls", "http://127.0.0.1:0"];
  const proc = spawn(DIQUIS_BIN, args, {
    cwd: os.tmpdir(),
    env: {
      ...process.env,
      RUST_LOG: process.env.DIQUIS_E2E_LOG || "warn",
      ConnectionStrings__DefaultConnection: db.connectionString,
      ...(redis ? { ConnectionStrings__RedisConnection: `127.0.0.1:${redis.port},abortConnect=false` } : {}),
      Seed__AdminEmail: ADMIN_EMAIL,
      Seed__AdminPassword: ADMIN_PASSWORD,
      Jwt__Key: JWT_KEY,
      Jobs__LeaseSeconds: "3",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: proc.stdout });
    lines.on("line", (line) => {
      const m = line.match(/^Now listening on: (http:\/\/\S+)/);
      if (m) resolve({ url: m[1], proc, exited, kill: (s = "SIGTERM") => proc.kill(s) });
    });
    exited.then(({ code }) => reject(new Error(`diquis ${role || ""} exited with ${code} before listening`)));
  });
}

async function stopDiquis(node) {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return;
  node.kill("SIGTERM");
  await node.exited;
}

/** Waits until `/health/ready` answers 200 (database, job storage and backplane healthy). */
async function ready(node) {
  await until(async () => (await fetch(`${node.url}/health/ready`).catch(() => ({ status: 0 }))).status === 200, `${node.url} is ready`);
}

async function login(url, email, password, tenant = "root") {
  const r = await fetch(`${url}/api/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password, tenant }) });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`sign-in of ${email}@${tenant} failed: ${JSON.stringify(body)}`);
  return body.data.token;
}

async function api(method, url, token, body) {
  const r = await fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: r.status, body: json };
}

function newTenant(id, isolated = false) {
  return { id, name: `Academy ${id}`, adminEmail: `owner@${id}.test`, password: "Owner1Passw0rd", hasIsolatedDatabase: isolated };
}

async function waitActive(url, token, id) {
  await until(async () => (await api("GET", `${url}/api/tenants/${id}`, token)).body?.data?.status === "Active", `tenant ${id} is Active`);
}

const EVENTS = ["TenantCreated", "TenantCreationFailed", "TenantUpdated", "TenantUpdateFailed"];

/**
 * An official-client connection that records every tenant event and, like the web UI, fetches
 * what it missed after each reconnect (deduplicated by the notification `id`).
 */
async function connectHub(url, token) {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${url}/hubs/notifications`, { accessTokenFactory: () => token })
    .withAutomaticReconnect([0, 500, 1000, 2000, 2000, 2000, 5000, 5000, 5000])
    .configureLogging(signalR.LogLevel.None)
    .build();
  const hub = { connection, events: [], seen: new Set(), waiters: [], connectedMessages: [], lastId: 0 };
  const record = (event, data) => {
    if (hub.seen.has(data.id)) return;
    hub.seen.add(data.id);
    hub.lastId = Math.max(hub.lastId, data.id);
    hub.events.push({ event, data });
    hub.waiters = hub.waiters.filter((w) => !(w.check() && (w.resolve(), true)));
  };
  for (const e of EVENTS) connection.on(e, (data) => record(e, data));
  connection.on("Connected", (m) => hub.connectedMessages.push(m));
  connection.onreconnected(async () => {
    const r = await api("GET", `${url}/api/notifications?after=${hub.lastId}`, token);
    for (const n of r.body.data || []) record(n.event, n.data);
  });
  hub.waitFor = (event, tenantId, count = 1) => {
    const check = () => hub.events.filter((x) => x.event === event && x.data.tenantId === tenantId).length >= count;
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${event} for ${tenantId} on ${url}`)), 90000);
      hub.waiters.push({ check, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  };
  hub.of = (event, tenantId) => hub.events.filter((x) => x.event === event && x.data.tenantId === tenantId);
  await connection.start();
  return hub;
}

/** An HS256 JWT with the test key, for tokens the server must refuse (expired ones). */
function signJwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64(claims);
  const sig = crypto.createHmac("sha256", JWT_KEY).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

module.exports = {
  ADMIN_EMAIL, ADMIN_PASSWORD, EVENTS, api, connectHub, freshDatabase, login, newTenant, psql, ready,
  signJwt, signalR, startDiquis, startRedis, stopDiquis, until, waitActive,
};
