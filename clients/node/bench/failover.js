"use strict";
// What the failover benchmarks share: a client on one node broadcasting every 5 ms, a client on
// the other receiving, the Redis primary killed once traffic flows; then the time from the kill
// to the first message sent after it that arrived, the time until every message sent during the
// switch had arrived, and how many were lost.

const { until } = require("../lib/redis");
const { fence, untilBroadcastsFlow } = require("../lib/backplane");

/** Measures one failover: `kill()` kills the primary (awaited) once traffic flows. */
async function measureFailover(sender, receiver, kill) {
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
    const killedAt = performance.now();
    await kill();
    await until(async () => sent.some(([msg, at]) => at > killedAt && arrivals.has(msg)), "a message sent after the kill arrives", 60_000);
    const firstAfter = Math.min(...sent.filter(([msg, at]) => at > killedAt && arrivals.has(msg)).map(([msg]) => arrivals.get(msg)));
    on = false;
    await loop;
    await fence(sender, [receiver]);
    const lost = sent.filter(([msg]) => !arrivals.has(msg)).length;
    const duringSwitch = sent.filter(([, at]) => at > killedAt && at < firstAfter);
    const allBacklog = Math.max(...duringSwitch.map(([msg]) => arrivals.get(msg)).filter((t) => t !== undefined), firstAfter);
    return { firstAfterMs: firstAfter - killedAt, backlogDoneMs: allBacklog - killedAt, sent: sent.length, sentDuringSwitch: duringSwitch.length, lost };
}

/** Runs `once` `runs` times and prints each run's figures. */
function report(runs, once) {
    (async () => {
        for (let i = 0; i < runs; i++) {
            const r = await once();
            console.log(
                `run ${i + 1}: first message after the kill delivered at ${r.firstAfterMs.toFixed(0)} ms; ` +
                    `switch backlog (${r.sentDuringSwitch} messages) delivered by ${r.backlogDoneMs.toFixed(0)} ms; sent ${r.sent}, lost ${r.lost}`,
            );
        }
    })().catch((err) => {
        console.error(err);
        process.exit(1);
    });
}

module.exports = { measureFailover, report };
