"use strict";
// Backplane throughput across nodes on one Redis, on a 3-primary Redis Cluster (one replica per
// primary) in classic Pub/Sub, and on the same cluster in sharded Pub/Sub: runs
// `cargo bench -p signalr-redis --bench backplane` (two backplane nodes in one process, see
// crates/signalr-redis/benches/backplane.rs) once per setup with BACKPLANE_BENCH_REDIS set.
//
//   node bench/cluster-backplane.js        (from clients/node; CARGO_TARGET_DIR as for the build;
//   BACKPLANE_BENCH_BIN=<the compiled bench> skips cargo)

const { execFile } = require("node:child_process");
const path = require("node:path");

const { RedisCluster, RedisServer } = require("../lib/redis");

function bench(redis, sharded) {
    return new Promise((resolve, reject) => {
        execFile(process.env.BACKPLANE_BENCH_BIN || "cargo", process.env.BACKPLANE_BENCH_BIN ? ["--bench"] : ["bench", "-q", "-p", "signalr-redis", "--bench", "backplane"], {
            cwd: path.join(__dirname, "..", "..", ".."),
            env: { ...process.env, BACKPLANE_BENCH_REDIS: redis, BACKPLANE_BENCH_SHARDED: sharded ? "1" : "0" },
            maxBuffer: 16 * 1024 * 1024,
            timeout: 20 * 60_000,
        }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
    });
}

(async () => {
    const single = await RedisServer.create();
    await single.start();
    try {
        console.log(`== one Redis\n${await bench(single.connectionString, false)}`);
    } finally {
        await single.stop();
    }
    for (const sharded of [false, true]) {
        const cluster = await RedisCluster.start();
        try {
            console.log(`== 3-primary cluster, ${sharded ? "sharded" : "classic"} Pub/Sub\n${await bench(cluster.connectionString, sharded)}`);
        } finally {
            await cluster.stop();
        }
    }
})().catch((err) => {
    console.error(err);
    process.exit(1);
});
