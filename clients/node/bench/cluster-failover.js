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
const { RedisCluster, until } = require("../lib/redis");
const { TEST_HUB_WIRE_NAME, connectPeer, fence, startNode, uniquePrefix, untilBroadcastsFlow } = require("../lib/backplane");

const sharded = process.argv.includes("--sharded");

async function once() {
    const group = await RedisCluster.start();
    const prefix = uniquePrefix("cluster-failover-bench");
    const nodes = await Promise.all([startNode(group, prefix, { sharded }), startNode(group, prefix, { sharded })]);
    const scope = new ConnectionScope();
    try {
        const sender = await connectPeer(scope, nodes[0], "a");
        const receiver = await connectPeer(scope, nodes[1], "b");
        await untilBroadcastsFlow(sender, [receiver], "warmup");
        const arrivals = new Map();
        receiver.connection.on("Message", (msg) => {
            if (msg.startsWith("tick-") && !arrivals.has(msg)) {
                arrivals.set(msg, performance.now());
            }
        });
        const sent = []; // [msg, sentAt]
        let on = true;
        const loop = (async () => {
            for (let n = 0; on; n++) {
                const msg = `tick-${n}`;
                const at = performance.now();
                await sender.invoke("SendToAll", msg);
                sent.push([msg, at]);
                await new Promise((resolve) => setTimeout(resolve, 5));
            }
        })();
        await until(async () => arrivals.size > 50, "traffic flows");
        const primary = await group.primaryFor(`${prefix}${TEST_HUB_WIRE_NAME}:all`);
        const killedAt = performance.now();
        await primary.kill();
        await until(async () => sent.some(([msg, at]) => at > killedAt && arrivals.has(msg)), "a message sent after the kill arrives", 60_000);
        const firstAfter = Math.min(...sent.filter(([msg, at]) => at > killedAt && arrivals.has(msg)).map(([msg]) => arrivals.get(msg)));
        on = false;
        await loop;
        await fence(sender, [receiver]);
        const lost = sent.filter(([msg]) => !arrivals.has(msg)).length;
        const duringSwitch = sent.filter(([, at]) => at > killedAt && at < firstAfter);
        const allBacklog = Math.max(...duringSwitch.map(([msg]) => arrivals.get(msg)).filter((t) => t !== undefined), firstAfter);
        return { firstAfterMs: firstAfter - killedAt, backlogDoneMs: allBacklog - killedAt, sent: sent.length, sentDuringSwitch: duringSwitch.length, lost };
    } finally {
        await scope.dispose();
        await Promise.allSettled(nodes.map((n) => n.stop()));
        await group.stop();
    }
}

(async () => {
    const runs = Number.parseInt(process.argv.slice(2).find((a) => /^\d+$/.test(a)) || "3", 10);
    console.log(`${sharded ? "sharded" : "classic"} Pub/Sub`);
    for (let i = 0; i < runs; i++) {
        const r = await once();
        console.log(`run ${i + 1}: first message after the kill delivered at ${r.firstAfterMs.toFixed(0)} ms; ` +
            `switch backlog (${r.sentDuringSwitch} messages) delivered by ${r.backlogDoneMs.toFixed(0)} ms; sent ${r.sent}, lost ${r.lost}`);
    }
})().catch((err) => {
    console.error(err);
    process.exit(1);
});
