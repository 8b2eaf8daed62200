"use strict";
// Measures a Redis Cluster shard failover as the backplane's users see it: two signalr-testserver
// nodes on a 3-primary cluster with one replica each (cluster-node-timeout 1000 ms), a client on
// node A broadcasting every 5 ms, a client on node B receiving. The primary owning the hub's
// `all` channel is SIGKILLed and the script reports, per run: the time from the kill to the first
// message sent after the kill that reached B, the time until every message sent during the
// switch had reached B, and how many were lost (expected 0).
//
//   node bench/cluster-failover.js [runs] [--sharded]      (SIGNALR_TESTSERVER as for the tests)

const { ConnectionScope } = require("../lib/client");
const { RedisCluster } = require("../lib/redis");
const { measureFailover, report } = require("./failover");
const { TEST_HUB_WIRE_NAME, connectPeer, startNode, uniquePrefix } = require("../lib/backplane");

const sharded = process.argv.includes("--sharded");

async function once() {
    const group = await RedisCluster.start();
    const prefix = uniquePrefix("cluster-failover-bench");
    const nodes = await Promise.all([startNode(group, prefix, { sharded }), startNode(group, prefix, { sharded })]);
    const scope = new ConnectionScope();
    try {
        const sender = await connectPeer(scope, nodes[0], "a");
        const receiver = await connectPeer(scope, nodes[1], "b");
        const primary = await group.primaryFor(`${prefix}${TEST_HUB_WIRE_NAME}:all`);
        return await measureFailover(sender, receiver, () => primary.kill());
    } finally {
        await scope.dispose();
        await Promise.allSettled(nodes.map((n) => n.stop()));
        await group.stop();
    }
}

console.log(`${sharded ? "sharded" : "classic"} Pub/Sub`);
report(Number.parseInt(process.argv.slice(2).find((a) => /^\d+$/.test(a)) || "3", 10), once);
