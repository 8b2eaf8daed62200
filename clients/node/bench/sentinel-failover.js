"use strict";
// Measures a Sentinel failover as the backplane's users see it: two signalr-testserver nodes on a
// Sentinel group (primary, replica, three sentinels; down-after-milliseconds 1000), a client on
// node A broadcasting every 5 ms, a client on node B receiving. The primary is SIGKILLed and the
// script reports, per run: the time from the kill to the first message sent after the kill that
// reached B, the time until every message sent during the switch had reached B, and how many
// were lost (expected 0).
//
//   node bench/sentinel-failover.js [runs]      (SIGNALR_TESTSERVER as for the tests)

const { ConnectionScope } = require("../lib/client");
const { RedisSentinelGroup } = require("../lib/redis");
const { measureFailover, report } = require("./failover");
const { connectPeer, startNode, uniquePrefix } = require("../lib/backplane");

async function once() {
    const group = await RedisSentinelGroup.start();
    const prefix = uniquePrefix("failover-bench");
    const nodes = await Promise.all([startNode(group.connectionString, prefix), startNode(group.connectionString, prefix)]);
    const scope = new ConnectionScope();
    try {
        const sender = await connectPeer(scope, nodes[0], "a");
        const receiver = await connectPeer(scope, nodes[1], "b");
        return await measureFailover(sender, receiver, () => group.primary.kill());
    } finally {
        await scope.dispose();
        await Promise.allSettled(nodes.map((n) => n.stop()));
        await group.stop();
    }
}

report(Number.parseInt(process.argv[2] || "3", 10), once);
