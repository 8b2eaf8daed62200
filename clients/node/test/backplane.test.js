"use strict";
// The Redis backplane across processes, with the official client: two and three
// `signalr-testserver` nodes on one private redis-server (started on a free port, never the
// machine's 6379), each with `--redis` and `--channel-prefix`.
//
// * all / others / group / others-in-group / user / connection across nodes, with exclusions;
// * group changes of a connection on another node (AddConnectionToGroup, acked through Redis);
// * a client result across nodes (`/clientresult/{id}` on another node than the connection);
// * the publisher-only process (crates/signalr-redis/examples/publish.rs) reaching every node;
// * Sentinel: the primary killed (SIGKILL) under traffic, the nodes follow the failover;
// * a 3-primary Redis Cluster with replicas, classic and sharded Pub/Sub: the multi-node tests
//   above, PUBSUB SHARDNUMSUB per shard, a shard's primary killed under traffic, and the slot of
//   the hub's "all" channel migrated to another primary under traffic (CLUSTER SETSLOT);
// * Redis killed (SIGKILL) and restarted under traffic; Redis absent at start; garbage and
//   truncated envelopes published straight onto the subscribed channels.
//
// No sleeps as synchronisation and no timing assertions: every wait is on an event, bounded by a
// deadline. "Nobody else got it" uses fences (see lib/backplane.js).

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");

const { ConnectionScope, httpGet, within } = require("../lib/client");
const { RedisCluster, RedisSentinelGroup, RedisServer, until } = require("../lib/redis");
const {
    RECOVERY_MS,
    TEST_HUB_WIRE_NAME,
    connectPeer,
    fence,
    fetchToken,
    runPublish,
    startNode,
    startTraffic,
    uniquePrefix,
    untilBroadcastsFlow,
} = require("../lib/backplane");

const TEST_TIMEOUT = { timeout: 120_000 };

/** Stops what a describe block started, in reverse order, ignoring what never started. */
async function stopAll(nodes, redis) {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    if (redis) {
        await redis.stop();
    }
}

/** Asserts that no peer's connection ever closed and that each still reports Connected. */
function assertStillConnected(peers) {
    for (const peer of peers) {
        assert.equal(peer.closedWith, null, `${peer.name} must not have been disconnected (onclose fired: ${peer.closedWith})`);
        assert.equal(peer.connection.state, "Connected", `${peer.name} must still be connected`);
    }
}

/** Builds a backplane invocation envelope by hand (wire reference §4.1, §4.2): [excluded, {protocol: bin}]. */
function envelope(excluded, entries) {
    const parts = [Buffer.from([0x92, 0x90 + excluded.length])];
    for (const id of excluded) {
        parts.push(Buffer.from([0xa0 + Buffer.byteLength(id)]), Buffer.from(id));
    }
    parts.push(Buffer.from([0x80 + entries.length]));
    for (const [name, frame] of entries) {
        const body = Buffer.from(frame);
        parts.push(Buffer.from([0xa0 + name.length]), Buffer.from(name), Buffer.from([0xc4, body.length]), body);
    }
    return Buffer.concat(parts);
}

/** A JSON hub-protocol invocation frame of `Message` with `msg`. */
function jsonFrame(msg) {
    return `${JSON.stringify({ type: 1, target: "Message", arguments: [msg] })}\x1e`;
}

/** Subscribers of `channel` on one cluster node: `PUBSUB NUMSUB` (classic, that node's own
 * subscribers) or `PUBSUB SHARDNUMSUB` (sharded). */
async function subscribersOn(node, channel, sharded) {
    const out = (await node.cli(["PUBSUB", sharded ? "SHARDNUMSUB" : "NUMSUB", channel])).trim().split("\n");
    return Number.parseInt(out[1], 10);
}

/** The Redis setups the multi-node tests run on: one server, and a 3-primary cluster (each
 * primary with a replica) in classic and in sharded Pub/Sub mode. */
const SETUPS = [
    { nodeCount: 2, label: "2 nodes" },
    { nodeCount: 3, label: "3 nodes" },
    { nodeCount: 2, label: "2 nodes on a 3-primary Redis Cluster (classic Pub/Sub)", cluster: true },
    { nodeCount: 2, label: "2 nodes on a 3-primary Redis Cluster (sharded Pub/Sub)", cluster: true, sharded: true },
];

for (const { nodeCount, label, cluster, sharded } of SETUPS) {
    describe(`Redis backplane: ${label}, official client`, () => {
        let redis;
        let nodes = [];
        let prefix;
        let scope;
        /** Per node: a JSON client and a MessagePack client, so both map entries are exercised. */
        let peers;

        before(async () => {
            if (cluster) {
                redis = await RedisCluster.start();
            } else {
                redis = await RedisServer.create();
                await redis.start();
            }
            prefix = uniquePrefix(`n${nodeCount}${cluster ? "c" : ""}${sharded ? "s" : ""}`);
            nodes = await Promise.all(Array.from({ length: nodeCount }, () => startNode(redis, prefix, { sharded })));
        });
        after(async () => {
            await stopAll(nodes, redis);
        });

        /** Opens the standard peers and waits until broadcasts flow between all nodes. */
        async function openPeers() {
            scope = new ConnectionScope();
            peers = [];
            for (const [i, node] of nodes.entries()) {
                peers.push(await connectPeer(scope, node, `json@${i}`));
                peers.push(await connectPeer(scope, node, `msgpack@${i}`, { protocol: "messagepack" }));
            }
            await untilBroadcastsFlow(peers[0], peers, "warmup");
            return peers;
        }
        afterEach(async () => {
            if (scope) {
                await scope.dispose();
            }
        });

        it("all and others reach every node; others excludes only the caller", TEST_TIMEOUT, async () => {
            await openPeers();
            for (const sender of peers) {
                const all = `all from ${sender.name}`;
                const others = `others from ${sender.name}`;
                await sender.invoke("SendToAll", all);
                await sender.invoke("SendToOthers", others);
                await Promise.all(peers.map((p) => p.received(all)));
                await Promise.all(peers.filter((p) => p !== sender).map((p) => p.received(others)));
                await fence(sender, peers);
                assert.equal(sender.count(others), 0, `${sender.name} must not get its own SendToOthers`);
                for (const p of peers) {
                    assert.equal(p.count(all), 1, `${p.name} gets "${all}" exactly once`);
                }
            }
        });

        it("groups span nodes; others-in-group excludes the caller on its node only", TEST_TIMEOUT, async () => {
            await openPeers();
            // One member per node (the JSON peers), the MessagePack peers stay outside; the last
            // node's MessagePack peer joins too so a group has two members on one node.
            const members = peers.filter((p) => p.name.startsWith("json@"));
            const extra = peers[peers.length - 1];
            members.push(extra);
            for (const m of members) {
                await m.invoke("JoinGroup", "team");
            }
            const outsiders = peers.filter((p) => !members.includes(p));
            const sender = outsiders[0];
            await sender.invoke("SendToGroup", "team", "to team");
            await Promise.all(members.map((m) => m.received("to team")));

            const caller = members[0];
            await caller.invoke("SendToOthersInGroup", "team", "others in team");
            await Promise.all(members.filter((m) => m !== caller).map((m) => m.received("others in team")));
            await fence(caller, peers);
            assert.equal(caller.count("others in team"), 0, "the caller is excluded from SendToOthersInGroup");
            for (const o of outsiders) {
                assert.equal(o.count("to team"), 0, `${o.name} is not in the group`);
                assert.equal(o.count("others in team"), 0, `${o.name} is not in the group`);
            }

            // Leaving: the last node keeps one member, the others have none and unsubscribe.
            await extra.invoke("LeaveGroup", "team");
            await sender.invoke("SendToGroup", "team", "after leave");
            await Promise.all(members.filter((m) => m !== extra).map((m) => m.received("after leave")));
            await fence(sender, peers);
            assert.equal(extra.count("after leave"), 0, `${extra.name} left the group`);
            for (const m of members.filter((m) => m !== extra)) {
                assert.equal(m.count("after leave"), 1);
            }
        });

        it("a token user connected on two nodes gets SendToUser on both, nobody else does", TEST_TIMEOUT, async () => {
            await openPeers();
            const first = nodes[0];
            const last = nodes[nodes.length - 1];
            // Each node signs its tokens with its own random key: one token per node.
            const userA = await connectPeer(scope, first, "testuser@first", { token: await fetchToken(first) });
            const userB = await connectPeer(scope, last, "testuser@last", { token: await fetchToken(last), protocol: "messagepack" });
            const everyone = [...peers, userA, userB];
            await untilBroadcastsFlow(peers[1], everyone, "user-warmup");
            const sender = peers[nodeCount === 2 ? 1 : 2]; // a peer on a node in the middle when there is one
            await sender.invoke("SendToUser", "testuser", "for testuser");
            await userA.received("for testuser");
            await userB.received("for testuser");
            await fence(sender, everyone);
            for (const p of peers) {
                assert.equal(p.count("for testuser"), 0, `${p.name} is not testuser`);
            }
            assert.equal(userA.count("for testuser"), 1);
            assert.equal(userB.count("for testuser"), 1);
        });

        it("SendToConnection reaches a connection on another node and only it", TEST_TIMEOUT, async () => {
            await openPeers();
            const sender = peers[0];
            for (const target of peers.filter((p) => p !== sender)) {
                const msg = `direct to ${target.name}`;
                await sender.invoke("SendToConnection", target.id, msg);
                await target.received(msg);
                await fence(sender, peers);
                for (const p of peers.filter((q) => q !== target)) {
                    assert.equal(p.count(msg), 0, `${p.name} must not get ${msg}`);
                }
                assert.equal(target.count(msg), 1);
            }
        });

        it("a connection on node A is added to and removed from a group by a call on node B", TEST_TIMEOUT, async () => {
            await openPeers();
            const onA = peers[0];
            const caller = peers[2]; // first peer of node B
            const sender = peers[peers.length - 1];
            // Resolves only once node A acknowledged the group command through Redis.
            await caller.invoke("AddConnectionToGroup", onA.id, "remote-group");
            await sender.invoke("SendToGroup", "remote-group", "to remote group");
            await onA.received("to remote group");
            await fence(sender, peers);
            for (const p of peers.filter((q) => q !== onA)) {
                assert.equal(p.count("to remote group"), 0, `${p.name} was not added`);
            }

            await caller.invoke("RemoveConnectionFromGroup", onA.id, "remote-group");
            await sender.invoke("SendToGroup", "remote-group", "after remote remove");
            await fence(sender, peers);
            assert.equal(onA.count("after remote remove"), 0, "the remote removal took effect");
            assert.equal(onA.count("to remote group"), 1);
        });

        it("a client result crosses nodes: /clientresult on node B for a connection on node A", TEST_TIMEOUT, async () => {
            scope = new ConnectionScope();
            const onA = await connectPeer(scope, nodes[0], "result@A");
            let asked = 0;
            onA.connection.on("Result", () => {
                asked += 1;
                return 10;
            });
            for (const node of nodes.slice(1)) {
                const response = await within(httpGet(`${node.url}/clientresult/${onA.id}`), "/clientresult");
                assert.equal(response.status, 200);
                assert.equal(response.text, "10");
            }
            assert.equal(asked, nodeCount - 1, "the client was asked once per call");
            // A connection that exists nowhere: an error text, not a hang and not a number.
            const missing = await within(httpGet(`${nodes[1].url}/clientresult/no-such-connection`), "/clientresult");
            assert.ok(!/^-?\d+$/.test(missing.text.trim()), `an error text, got ${JSON.stringify(missing.text)}`);
        });

        if (sharded) {
            it("PUBSUB SHARDNUMSUB shows every channel on its own shard only, under .NET's channel names", TEST_TIMEOUT, async () => {
                await openPeers();
                await peers[0].invoke("JoinGroup", "sharded-team");
                await peers[3].invoke("JoinGroup", "sharded-team");
                const base = `${prefix}${TEST_HUB_WIRE_NAME}`;
                const expected = [
                    [`${base}:all`, nodeCount],
                    [`${base}:group:sharded-team`, 2],
                    ...peers.map((p) => [`${base}:connection:${p.id}`, 1]),
                ];
                const primaries = await redis.primaries();
                const shardsUsed = new Set();
                for (const [channel, count] of expected) {
                    const owner = await redis.primaryFor(channel);
                    shardsUsed.add(owner.port);
                    assert.equal(await subscribersOn(owner, channel, true), count, `${channel} on its shard`);
                    assert.equal(await subscribersOn(owner, channel, false), 0, `${channel}: no classic subscription`);
                    for (const other of primaries.filter((n) => n !== owner)) {
                        assert.equal(await subscribersOn(other, channel, true), 0, `${channel} is not on ${other.port}`);
                    }
                }
                assert.ok(shardsUsed.size > 1, "the channels are spread over several shards");
            });
        }

        it("the publisher-only process reaches clients on every node (all, group, user)", TEST_TIMEOUT, async () => {
            await openPeers();
            const common = ["--redis", redis.connectionString, "--channel-prefix", prefix,
                "--hub", TEST_HUB_WIRE_NAME, "--target", "Message", ...(sharded ? ["--sharded"] : [])];
            const out = await runPublish([...common, "--arg", "hello from the jobs process"]);
            assert.match(out, /published/);
            await Promise.all(peers.map((p) => p.received("hello from the jobs process")));

            const groupMembers = [peers[1], peers[peers.length - 2]];
            for (const m of groupMembers) {
                await m.invoke("JoinGroup", "published-group");
            }
            await runPublish([...common, "--arg", "to the group", "--group", "published-group"]);
            await Promise.all(groupMembers.map((m) => m.received("to the group")));

            const users = [];
            for (const [i, node] of nodes.entries()) {
                users.push(await connectPeer(scope, node, `testuser@${i}`, { token: await fetchToken(node) }));
            }
            await untilBroadcastsFlow(peers[0], users, "users-ready");
            await runPublish([...common, "--arg", "to testuser", "--user", "testuser"]);
            await Promise.all(users.map((u) => u.received("to testuser")));

            await runPublish([...common, "--arg", "to one connection", "--connection", peers[peers.length - 1].id]);
            await peers[peers.length - 1].received("to one connection");

            // The publisher's messages were not delivered to anyone they were not meant for.
            await fence(peers[0], [...peers, ...users]);
            for (const p of peers.filter((q) => !groupMembers.includes(q))) {
                assert.equal(p.count("to the group"), 0, `${p.name} is not in the group`);
            }
            for (const p of peers) {
                assert.equal(p.count("to testuser"), 0, `${p.name} is not testuser`);
                assert.equal(p.count("hello from the jobs process"), 1);
            }
            for (const p of peers.slice(0, -1)) {
                assert.equal(p.count("to one connection"), 0);
            }
        });
    });
}

/**
 * Broadcast traffic from `a1` and `b1` while `fault()` runs, then checks that every message
 * reached every peer and that no client was disconnected.
 */
async function nothingLostThrough(fault, { a1, b1, everyone }, { exactlyOnce = false } = {}) {
    await untilBroadcastsFlow(a1, everyone, "before-fault-a");
    await untilBroadcastsFlow(b1, everyone, "before-fault-b");
    const traffic = [startTraffic(a1, 50), startTraffic(b1, 50)];
    try {
        await everyone[1].received("traffic-a1-3");
        await everyone[3].received("traffic-b1-3");
        await fault();
        await untilBroadcastsFlow(a1, everyone, "after-fault-a");
        await untilBroadcastsFlow(b1, everyone, "after-fault-b");
        await Promise.all(traffic.map((t) => t.stop()));
        await fence(a1, everyone);
        await fence(b1, everyone);
        const expected = [...traffic[0].sent, ...traffic[1].sent];
        for (const peer of everyone) {
            const missing = expected.filter((m) => peer.count(m) === 0);
            assert.deepEqual(missing, [], `${peer.name} lost messages`);
            if (exactlyOnce) {
                const repeated = expected.filter((m) => peer.count(m) > 1);
                assert.deepEqual(repeated, [], `${peer.name} got messages more than once`);
            }
        }
        assertStillConnected(everyone);
    } finally {
        await Promise.allSettled(traffic.map((t) => t.stop()));
    }
}

/** Two peers on each of two nodes (JSON and MessagePack). */
async function twoByTwo(scope, [nodeA, nodeB]) {
    const a1 = await connectPeer(scope, nodeA, "a1");
    const a2 = await connectPeer(scope, nodeA, "a2", { protocol: "messagepack" });
    const b1 = await connectPeer(scope, nodeB, "b1");
    const b2 = await connectPeer(scope, nodeB, "b2", { protocol: "messagepack" });
    return { a1, b1, everyone: [a1, a2, b1, b2] };
}

describe("Redis backplane: Sentinel, primary killed (SIGKILL) under traffic", () => {
    let group;
    let nodes = [];
    const scope = new ConnectionScope();

    let allChannel;

    before(async () => {
        group = await RedisSentinelGroup.start();
        const prefix = uniquePrefix("sentinel");
        allChannel = `${prefix}${TEST_HUB_WIRE_NAME}:all`;
        nodes = await Promise.all([startNode(group.connectionString, prefix), startNode(group.connectionString, prefix)]);
    });
    after(async () => {
        await scope.dispose();
        await Promise.allSettled(nodes.map((n) => n.stop()));
        if (group) {
            await group.stop();
        }
    });

    it("the nodes follow the failover to the replica; every message arrives, no client disconnects", TEST_TIMEOUT, async () => {
        const peers = await twoByTwo(scope, nodes);
        assert.equal(await group.primary.numsub(allChannel), 2, "both nodes subscribe on the first primary");
        await nothingLostThrough(async () => {
            await group.primary.kill();
            await until(async () => (await group.primaryPort()) === group.replica.port, "the sentinels promote the replica",
                RECOVERY_MS);
        }, peers);
        assert.equal(await group.replica.numsub(allChannel), 2, "both nodes subscribe on the new primary");
    });

    it("a failover with both servers alive (SENTINEL FAILOVER): the nodes leave the demoted primary", TEST_TIMEOUT, async () => {
        // The killed primary comes back; the sentinels make it a replica of the new one.
        const [oldPrimary, newPrimary] = [group.primary, group.replica];
        await oldPrimary.start();
        await until(async () => /master_link_status:up/.test(await oldPrimary.cli(["INFO", "replication"])),
            "the old primary is back as a replica", RECOVERY_MS);
        const peers = await twoByTwo(scope, nodes);
        await nothingLostThrough(async () => {
            // Nothing breaks a connection here: only the sentinels' +switch-master (or the
            // publisher's ROLE check) tells the nodes to move.
            await until(async () => (await group.sentinels[0].cli(["SENTINEL", "FAILOVER", group.service])).trim() === "OK",
                "the sentinels accept a failover", RECOVERY_MS);
            await until(async () => (await group.primaryPort()) === oldPrimary.port, "the sentinels switch back", RECOVERY_MS);
            await until(async () => (await oldPrimary.numsub(allChannel)) === 2, "both nodes subscribe on the new primary", RECOVERY_MS);
        }, peers);
        assert.equal(await newPrimary.numsub(allChannel), 0, "no node is left subscribed on the demoted primary");
    });
});

for (const sharded of [false, true]) {
    describe(`Redis backplane: Redis Cluster (${sharded ? "sharded" : "classic"} Pub/Sub), a shard's primary killed (SIGKILL) under traffic`, () => {
        let cluster;
        let nodes = [];
        const scope = new ConnectionScope();
        let allChannel;

        before(async () => {
            cluster = await RedisCluster.start();
            const prefix = uniquePrefix(sharded ? "cluster-sharded" : "cluster");
            allChannel = `${prefix}${TEST_HUB_WIRE_NAME}:all`;
            nodes = await Promise.all([startNode(cluster, prefix, { sharded }), startNode(cluster, prefix, { sharded })]);
        });
        after(async () => {
            await scope.dispose();
            await Promise.allSettled(nodes.map((n) => n.stop()));
            if (cluster) {
                await cluster.stop();
            }
        });

        it("the nodes follow the failover to the replica; every message arrives, no client disconnects", TEST_TIMEOUT, async () => {
            const peers = await twoByTwo(scope, nodes);
            const primary = await cluster.primaryFor(allChannel);
            assert.equal(await subscribersOn(primary, allChannel, sharded), 2, "both nodes subscribe on the primary of the channel's slot");
            let promoted;
            await nothingLostThrough(async () => {
                await primary.kill();
                await until(async () => {
                    promoted = await cluster.primaryFor(allChannel);
                    return promoted !== primary;
                }, "the cluster promotes the replica", RECOVERY_MS);
            }, peers);
            assert.equal(await subscribersOn(promoted, allChannel, sharded), 2, "both nodes subscribe on the promoted replica");

            // Every kind of send still crosses nodes, and so does a client result.
            const [a1, , b1] = peers.everyone;
            await b1.invoke("SendToConnection", a1.id, "direct after failover");
            await a1.received("direct after failover");
            a1.connection.on("Result", () => 7);
            const response = await within(httpGet(`${nodes[1].url}/clientresult/${a1.id}`), "/clientresult");
            assert.equal(response.text, "7");
        });
    });
}

for (const sharded of [true, false]) {
    describe(`Redis backplane: Redis Cluster (${sharded ? "sharded" : "classic"} Pub/Sub), the hub's busy channel's slot migrated to another primary under traffic`, () => {
        let cluster;
        let nodes = [];
        const scope = new ConnectionScope();
        let allChannel;

        before(async () => {
            cluster = await RedisCluster.start();
            const prefix = uniquePrefix(sharded ? "reshard-sharded" : "reshard");
            allChannel = `${prefix}${TEST_HUB_WIRE_NAME}:all`;
            nodes = await Promise.all([startNode(cluster, prefix, { sharded }), startNode(cluster, prefix, { sharded })]);
        });
        after(async () => {
            await scope.dispose();
            await Promise.allSettled(nodes.map((n) => n.stop()));
            if (cluster) {
                await cluster.stop();
            }
        });

        // Sharded: the source keeps serving the slot's channels until CLUSTER SETSLOT … NODE,
        // then answers SPUBLISH with MOVED and drops the subscribers (sunsubscribe); the nodes
        // move their subscriptions and hold the slot's publishes until the new primary shows the
        // subscribers: exactly once. Classic: nothing is redirected, the nodes move within the
        // refresh interval, subscribing on the new primary before leaving the old one (a message
        // published in that instant may come twice: at least once is asserted).
        it(`the nodes follow the slot to its new primary; every message arrives ${sharded ? "exactly" : "at least"} once, no client disconnects`, TEST_TIMEOUT, async () => {
            const peers = await twoByTwo(scope, nodes);
            const slot = await cluster.keySlot(allChannel);
            const source = await cluster.primaryFor(allChannel);
            const target = (await cluster.primaries()).find((p) => p !== source);
            assert.equal(await subscribersOn(source, allChannel, sharded), 2, "both nodes subscribe on the slot's primary");
            assert.equal(await subscribersOn(target, allChannel, sharded), 0);
            await nothingLostThrough(async () => {
                await cluster.migrateSlot(slot, source, target);
                await until(async () => (await cluster.primaryFor(allChannel)) === target, "the cluster reports the slot moved", RECOVERY_MS);
                await until(async () => (await subscribersOn(target, allChannel, sharded)) === 2
                    && (await subscribersOn(source, allChannel, sharded)) === 0,
                "both nodes subscribe on the slot's new primary and left the old one", RECOVERY_MS);
            }, peers, { exactlyOnce: sharded });
            assert.equal(await subscribersOn(target, allChannel, sharded), 2, "both nodes subscribe on the new primary");
            assert.equal(await subscribersOn(source, allChannel, sharded), 0, "no node is left subscribed on the old primary");

            // Every kind of send still crosses nodes, and so does a client result.
            const [a1, , b1] = peers.everyone;
            await b1.invoke("SendToConnection", a1.id, "direct after the migration");
            await a1.received("direct after the migration");
            a1.connection.on("Result", () => 7);
            const response = await within(httpGet(`${nodes[1].url}/clientresult/${a1.id}`), "/clientresult");
            assert.equal(response.text, "7");
        });

        if (sharded) {
            // Node B subscribes nothing in the group's slot, so only the MOVED answers to its
            // SPUBLISHes tell it (before its periodic refresh): those publishes are taken back,
            // held until the new primary shows node A's subscription, and re-sent in order.
            it("sends to a group whose slot moves, from a node that learns it from MOVED, arrive exactly once and in order", TEST_TIMEOUT, async () => {
                const [nodeA, nodeB] = nodes;
                const member = await connectPeer(scope, nodeA, "member");
                const sender = await connectPeer(scope, nodeB, "sender");
                const group = `moving-${Date.now()}`;
                await member.invoke("JoinGroup", group);
                const groupChannel = `${allChannel.slice(0, -":all".length)}:group:${group}`;
                const source = await cluster.primaryFor(groupChannel);
                const target = (await cluster.primaries()).find((p) => p !== source);
                assert.equal(await subscribersOn(source, groupChannel, true), 1, "node A subscribes the group on its slot's primary");

                const sent = [];
                let on = true;
                const loop = (async () => {
                    for (let n = 0; on; n++) {
                        const msg = `group-${n}`;
                        await sender.invoke("SendToGroup", group, msg);
                        sent.push(msg);
                        await new Promise((resolve) => setTimeout(resolve, 10));
                    }
                })();
                try {
                    await member.received("group-3");
                    await cluster.migrateSlot(await cluster.keySlot(groupChannel), source, target);
                    await until(async () => (await subscribersOn(target, groupChannel, true)) === 1
                        && (await subscribersOn(source, groupChannel, true)) === 0,
                    "node A subscribes the group on the slot's new primary", RECOVERY_MS);
                    const after = sent.length;
                    await member.receivedMatching((m) => m.startsWith("group-") && Number(m.slice(6)) >= after + 3,
                        "sends made after the move", RECOVERY_MS);
                } finally {
                    on = false;
                    await loop;
                }
                // Sends to one group from one node arrive in order: once the last one is in,
                // every earlier one has had its chance.
                await member.received(sent[sent.length - 1]);
                const got = member.messages.filter((m) => m.startsWith("group-"));
                assert.deepEqual(got, sent, "every send to the group arrived once, in order");
                assertStillConnected([member, sender]);
            });
        }
    });
}

describe("Redis backplane: Redis killed (SIGKILL) and restarted under traffic", () => {
    let redis;
    let nodes = [];
    const scope = new ConnectionScope();

    before(async () => {
        redis = await RedisServer.create();
        await redis.start();
        const prefix = uniquePrefix("outage");
        nodes = await Promise.all([startNode(redis, prefix), startNode(redis, prefix)]);
    });
    after(async () => {
        await scope.dispose();
        await stopAll(nodes, redis);
    });

    it("no client disconnects, local delivery goes on, cross-node delivery resumes, nothing sent is lost", TEST_TIMEOUT, async () => {
        const [nodeA, nodeB] = nodes;
        const a1 = await connectPeer(scope, nodeA, "a1");
        const a2 = await connectPeer(scope, nodeA, "a2", { protocol: "messagepack" });
        const b1 = await connectPeer(scope, nodeB, "b1");
        const b2 = await connectPeer(scope, nodeB, "b2", { protocol: "messagepack" });
        const everyone = [a1, a2, b1, b2];
        await untilBroadcastsFlow(a1, everyone, "before-outage-a");
        await untilBroadcastsFlow(b1, everyone, "before-outage-b");
        await a2.invoke("JoinGroup", "og");
        await b2.invoke("JoinGroup", "og");

        // Traffic: a1 and b1 broadcast continuously, before, during and after the outage.
        const traffic = [startTraffic(a1), startTraffic(b1)];
        try {
            await a2.received("traffic-a1-3");
            await b2.received("traffic-b1-3");

            await redis.kill();

            // Local delivery never stops: a broadcast from a1 reaches a2 (same node) while Redis
            // is still down. The node may need a moment to notice the loss (what it sends before
            // is delivered through Redis later), so a1 keeps broadcasting until one arrives.
            const localSent = [];
            let localDone = false;
            const localArrived = a2.receivedMatching((m) => m.startsWith("local-a-"),
                "a broadcast from its own node while Redis is down", RECOVERY_MS);
            localArrived.then(() => { localDone = true; }, () => { localDone = true; });
            for (let n = 0; !localDone; n++) {
                const msg = `local-a-${n}`;
                await a1.invoke("SendToAll", msg);
                localSent.push(msg);
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
            const firstLocal = await localArrived;
            // Now that node A knows, each broadcast reaches its own clients at once.
            await a1.invoke("SendToAll", "broadcast on A while Redis is down");
            localSent.push("broadcast on A while Redis is down");
            await a2.received("broadcast on A while Redis is down");
            await a1.received("broadcast on A while Redis is down");
            // A single local connection, on both nodes.
            await b1.invoke("SendToConnection", b2.id, "direct on B while Redis is down");
            await b2.received("direct on B while Redis is down");
            await a1.invoke("SendToConnection", a2.id, "direct on A while Redis is down");
            await a2.received("direct on A while Redis is down");
            // A group with members on both nodes: the member on the sender's node gets it now.
            // B may still be sending into the dead connection, so b1 repeats until b2 has one.
            const groupSent = [];
            let groupDone = false;
            const groupArrived = b2.receivedMatching((m) => m.startsWith("group-b-"),
                "a group send from its own node while Redis is down", RECOVERY_MS);
            groupArrived.then(() => { groupDone = true; }, () => { groupDone = true; });
            for (let n = 0; !groupDone; n++) {
                const msg = `group-b-${n}`;
                await b1.invoke("SendToGroup", "og", msg);
                groupSent.push(msg);
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
            await groupArrived;
            assertStillConnected(everyone);

            await redis.start();
            // Cross-node delivery resumes, each way.
            await untilBroadcastsFlow(a1, [b1, b2], "after-restart-a");
            await untilBroadcastsFlow(b1, [a1, a2], "after-restart-b");
            await Promise.all(traffic.map((t) => t.stop()));
            await fence(a1, everyone);
            await fence(b1, everyone);

            // Nothing sent before, during or after the outage was lost, on either node.
            const expected = [...traffic[0].sent, ...traffic[1].sent, ...localSent];
            assert.ok(traffic[0].sent.length > 0 && traffic[1].sent.length > 0);
            for (const peer of everyone) {
                const missing = expected.filter((m) => peer.count(m) === 0);
                assert.deepEqual(missing, [], `${peer.name} lost messages`);
            }
            for (const peer of [a2, b2]) {
                const missing = groupSent.filter((m) => peer.count(m) === 0);
                assert.deepEqual(missing, [], `${peer.name} lost group messages`);
            }
            for (const peer of [a1, b1]) {
                assert.equal(groupSent.filter((m) => peer.count(m) > 0).length, 0, `${peer.name} is not in the group`);
            }
            // The batch in flight when the connection broke is sent again (at-least-once, see
            // crates/signalr-redis/src/link.rs), so early repeats are allowed; what a node sent
            // once it knew Redis was down reaches each client exactly once: directly on its own
            // node, through Redis (which excludes those clients) on the other.
            for (const msg of [firstLocal, "broadcast on A while Redis is down"]) {
                for (const peer of everyone) {
                    assert.equal(peer.count(msg), 1, `${peer.name} gets "${msg}" exactly once`);
                }
            }
            const lastGroup = groupSent[groupSent.length - 1];
            assert.equal(a2.count(lastGroup), 1, `a2 gets "${lastGroup}" exactly once`);
            assert.equal(b2.count(lastGroup), 1, `b2 gets "${lastGroup}" exactly once`);
            assertStillConnected(everyone);
        } finally {
            await Promise.allSettled(traffic.map((t) => t.stop()));
        }
    });
});

describe("Redis backplane: Redis absent at start, then started", () => {
    let redis;
    let nodes = [];
    const scope = new ConnectionScope();

    before(async () => {
        redis = await RedisServer.create(); // port chosen, server not started yet
    });
    after(async () => {
        await scope.dispose();
        await stopAll(nodes, redis);
    });

    it("the node comes up and serves locally, then delivers across nodes once Redis runs", TEST_TIMEOUT, async () => {
        const prefix = uniquePrefix("absent");
        const nodeA = await startNode(redis, prefix); // resolves on "Now listening on:"
        nodes.push(nodeA);
        const a1 = await connectPeer(scope, nodeA, "a1");
        const a2 = await connectPeer(scope, nodeA, "a2", { protocol: "messagepack" });
        assert.equal(await a1.invoke("Echo", "hi"), "hi");
        await a1.invoke("SendToConnection", a2.id, "local while Redis is absent");
        await a2.received("local while Redis is absent");
        await a1.invoke("SendToAll", "broadcast while Redis is absent");
        await a2.received("broadcast while Redis is absent", RECOVERY_MS);
        await a1.invoke("JoinGroup", "g");

        await redis.start();
        const nodeB = await startNode(redis, prefix);
        nodes.push(nodeB);
        const b1 = await connectPeer(scope, nodeB, "b1");
        await untilBroadcastsFlow(a1, [a2, b1], "after-start-a");
        await untilBroadcastsFlow(b1, [a1, a2], "after-start-b");
        await b1.invoke("SendToGroup", "g", "group across nodes");
        await a1.received("group across nodes");
        await fence(b1, [a1, a2, b1]);
        assert.equal(a2.count("group across nodes"), 0);
        assert.equal(a2.count("broadcast while Redis is absent"), 1, "the early broadcast arrives exactly once");
        assertStillConnected([a1, a2, b1]);
    });
});

describe("Redis backplane: bad input on the subscribed channels", () => {
    let redis;
    let nodes = [];
    let prefix;
    const scope = new ConnectionScope();

    before(async () => {
        redis = await RedisServer.create();
        await redis.start();
        prefix = uniquePrefix("bad");
        nodes = await Promise.all([startNode(redis, prefix), startNode(redis, prefix)]);
    });
    after(async () => {
        await scope.dispose();
        await stopAll(nodes, redis);
    });

    it("garbage, truncated envelopes and unknown protocols are skipped; the nodes keep serving", TEST_TIMEOUT, async () => {
        const [nodeA, nodeB] = nodes;
        const a1 = await connectPeer(scope, nodeA, "a1");
        const b1 = await connectPeer(scope, nodeB, "b1", { protocol: "messagepack" });
        const b2 = await connectPeer(scope, nodeB, "b2");
        const everyone = [a1, b1, b2];
        await b2.invoke("JoinGroup", "g");
        await untilBroadcastsFlow(a1, everyone, "before-garbage");

        const hub = `${prefix}${TEST_HUB_WIRE_NAME}`;
        // Every channel the nodes subscribe to, including the per-server ack and return channels.
        const subscribed = (await redis.cli(["PUBSUB", "CHANNELS", `${hub}:*`])).trim().split("\n").filter(Boolean);
        for (const suffix of [":all", ":internal:groups", `:connection:${b2.id}`, ":group:g"]) {
            assert.ok(subscribed.includes(`${hub}${suffix}`), `a node subscribes ${hub}${suffix}: ${subscribed}`);
        }
        assert.ok(subscribed.some((c) => c.startsWith(`${hub}:internal:ack:`)), "ack channels are subscribed");
        assert.ok(subscribed.some((c) => c.startsWith(`${hub}:internal:return:`)), "return channels are subscribed");

        // A well-formed envelope built by hand is delivered: the channel names are right.
        const good = envelope([], [["json", jsonFrame("hand-built")]]);
        await redis.publishRaw(`${hub}:all`, good);
        await Promise.all([a1.received("hand-built"), b2.received("hand-built")]);

        const bad = [
            Buffer.from("this is not MessagePack at all"),
            Buffer.alloc(0),
            Buffer.from([0xc1]), // never used in MessagePack
            Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 claiming 4 billion items
            good.subarray(0, 1),
            good.subarray(0, 3),
            good.subarray(0, 10),
            good.subarray(0, good.length - 1),
            envelope([], [["blazorpack", "not a protocol anyone speaks"]]),
            envelope(["x"], []), // no protocol entry at all
            Buffer.from([0x95, 0x01, 0xa1, 0x78]), // a truncated group command
            Buffer.from([0x92, 0xa4, 0x6a, 0x73, 0x6f]), // a truncated completion
            // Well-formed but unexpected: an ack nobody waits for, a group command for a
            // connection that exists nowhere, a completion of an unknown client result.
            Buffer.from([0x91, 0xcd, 0x30, 0x39]),
            Buffer.concat([Buffer.from([0x95, 0x01, 0xa3]), Buffer.from("srv"), Buffer.from([0x01, 0xa1]),
                Buffer.from("x"), Buffer.from([0xa6]), Buffer.from("nobody")]),
            (() => {
                const frame = Buffer.from('{"type":3,"invocationId":"nope","result":1}\x1e');
                return Buffer.concat([Buffer.from([0x92, 0xa4]), Buffer.from("json"), Buffer.from([0xc4, frame.length]), frame]);
            })(),
        ];
        for (const channel of subscribed) {
            for (const payload of bad) {
                await redis.publishRaw(channel, payload);
            }
        }
        // Each node still runs, answers, and delivers locally and across nodes afterwards.
        for (const node of nodes) {
            assert.ok(node.isRunning(), "the node survived the bad input");
        }
        assert.equal(await b1.invoke("Echo", "still here"), "still here");
        await untilBroadcastsFlow(a1, everyone, "after-garbage-a");
        await untilBroadcastsFlow(b1, everyone, "after-garbage-b");
        await a1.invoke("SendToGroup", "g", "group after garbage");
        await b2.received("group after garbage");
        await a1.invoke("SendToConnection", b1.id, "connection after garbage");
        await b1.received("connection after garbage");
        await redis.publishRaw(`${hub}:all`, envelope([], [["json", jsonFrame("hand-built again")]]));
        await Promise.all([a1.received("hand-built again"), b2.received("hand-built again")]);
        // Nothing from the bad input reached a client; the JSON-only envelope skipped b1
        // (MessagePack) as .NET does, the good ones reached the JSON peers once.
        assert.equal(a1.count("hand-built"), 1);
        assert.equal(b2.count("hand-built"), 1);
        for (const node of nodes) {
            assert.ok(node.isRunning(), "the node survived the bad input");
        }
        assertStillConnected(everyone);
    });
});
