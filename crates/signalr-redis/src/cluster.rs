//! Redis Cluster: which node owns a channel.
//!
//! A cluster splits the key space into 16,384 hash slots, each owned by one shard (a primary and
//! its replicas). The backplane routes every channel as StackExchange.Redis does: `SUBSCRIBE` and
//! `PUBLISH` of a channel go to the primary owning the channel's slot (the slot of a key of the
//! same name). In classic mode the cluster forwards every message to every node anyway, but only
//! there does a `PUBLISH` answer the true number of subscribers (a client result needs it) and
//! only there does a shard's failover reach the publisher as well as the subscriber, so that
//! the publisher holds its messages while the subscriptions move. In sharded mode
//! (`SSUBSCRIBE`/`SPUBLISH`) the routing is required: another node answers `MOVED`.

use crate::config::Endpoint;

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The hash slot of a key or channel: CRC16 of the hash tag (the text between the first `{` and
/// the next `}`, when not empty) or of the whole name, modulo 16,384.
pub fn slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS
}

/// A `MOVED slot host:port` (or `ASK`) redirection from an error message, as Redis writes it
/// (`MOVED 3999 127.0.0.1:6381`; IPv6 hosts unbracketed, the port after the last colon; an
/// empty host means the node that answered).
pub fn parse_redirect(message: &str) -> Option<(u16, Endpoint)> {
    let mut words = message.split_whitespace();
    let kind = words.next()?;
    if kind != "MOVED" && kind != "ASK" {
        return None;
    }
    let slot: u16 = words.next()?.parse().ok().filter(|slot| *slot < SLOTS)?;
    Some((slot, parse_address(words.next()?)?))
}

/// One shard's slots and primary, from `CLUSTER SLOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot of the range.
    pub start: u16,
    /// Last slot of the range (inclusive).
    pub end: u16,
    /// The range's primary.
    pub primary: Endpoint,
    /// Its replicas.
    pub replicas: Vec<Endpoint>,
}

/// Who owns which slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMap {
    /// The ranges, sorted by first slot.
    pub ranges: Vec<SlotRange>,
}

impl SlotMap {
    /// Reads a `CLUSTER SLOTS` reply. `asked` is the node that answered: a node that does not know
    /// its own address lists itself with an empty host (or `?`).
    pub fn from_cluster_slots(reply: &redis::Value, asked: &Endpoint) -> Option<Self> {
        let redis::Value::Array(entries) = reply else { return None };
        let mut ranges = Vec::new();
        for entry in entries {
            let redis::Value::Array(fields) = entry else { return None };
            let start = as_int(fields.first()?)?;
            let end = as_int(fields.get(1)?)?;
            let mut nodes = fields[2..].iter().filter_map(|node| node_endpoint(node, asked));
            let primary = nodes.next()?;
            ranges.push(SlotRange { start: u16::try_from(start).ok()?, end: u16::try_from(end).ok()?, primary, replicas: nodes.collect() });
        }
        ranges.sort_by_key(|range| range.start);
        Some(Self { ranges })
    }

    /// The range holding `slot`.
    pub fn range_of(&self, slot: u16) -> Option<&SlotRange> {
        self.ranges.iter().find(|range| range.start <= slot && slot <= range.end)
    }

    /// Every node named, primaries first (for asking again later).
    pub fn nodes(&self) -> Vec<Endpoint> {
        let mut nodes: Vec<Endpoint> = Vec::new();
        for endpoint in self.ranges.iter().map(|range| &range.primary).chain(self.ranges.iter().flat_map(|range| &range.replicas)) {
            if !nodes.contains(endpoint) {
                nodes.push(endpoint.clone());
            }
        }
        nodes
    }

    /// The shards: one entry per distinct primary, named by the lowest slot it owns (a shard
    /// keeps that name across a failover, when its primary changes but its slots do not).
    pub fn shards(&self) -> Vec<(u16, Endpoint)> {
        let mut shards: Vec<(u16, Endpoint)> = Vec::new();
        for range in &self.ranges {
            if !shards.iter().any(|(_, primary)| *primary == range.primary) {
                shards.push((range.start, range.primary.clone()));
            }
        }
        shards
    }
}

/// `host:port` as a redirection names a node (IPv6 hosts with or without brackets).
pub fn parse_address(address: &str) -> Option<Endpoint> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(Endpoint { host: host.to_string(), port: port.parse().ok()? })
}

/// Slots leaving one shard for another primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMove {
    /// Index of the shard the slots leave.
    pub from: usize,
    /// The primary that owns them now.
    pub to: Endpoint,
    /// The slots, ascending.
    pub slots: Vec<u16>,
}

/// What moved, given `table` (slot → shard index) and what shards' primaries say.
///
/// `views` holds, for some shards, `(shard, its primary, that primary's CLUSTER SLOTS)`; only a
/// primary's word about its *own* slots counts. Until a primary gives a slot up it still serves
/// it (sharded channels stay on the source during a migration, until `CLUSTER SETSLOT … NODE`),
/// and once it has, it answers `MOVED` and has dropped the slot's sharded subscribers: so a slot
/// moves exactly when its old primary stops serving it, whatever a lagging node still reports.
/// `hints` are `MOVED` replies `(slot, new owner)` from the shard the slot is routed to, the
/// same word in another form; `primaries` (by shard) tells a stale hint, about a slot already
/// routed to the named primary. A slot its primary reports as unassigned is left where it is.
pub fn slot_moves(
    table: &[u8],
    primaries: &[Option<Endpoint>],
    views: &[(usize, Endpoint, SlotMap)],
    hints: &[(u16, Endpoint)],
) -> Vec<SlotMove> {
    let mut owner: Vec<Option<&Endpoint>> = vec![None; table.len()];
    for (shard, primary, map) in views {
        for range in &map.ranges {
            if range.primary == *primary {
                continue;
            }
            for slot in range.start..=range.end.min(SLOTS - 1) {
                if table.get(usize::from(slot)).is_some_and(|&routed| usize::from(routed) == *shard) {
                    owner[usize::from(slot)] = Some(&range.primary);
                }
            }
        }
    }
    for (slot, to) in hints {
        let Some(&routed) = table.get(usize::from(*slot)) else { continue };
        let stale = primaries.get(usize::from(routed)).is_some_and(|primary| primary.as_ref() == Some(to));
        if !stale && owner[usize::from(*slot)].is_none() {
            owner[usize::from(*slot)] = Some(to);
        }
    }
    let mut moves: Vec<SlotMove> = Vec::new();
    for (slot, to) in owner.iter().enumerate() {
        let Some(to) = to else { continue };
        let from = usize::from(table[slot]);
        match moves.iter_mut().find(|m| m.from == from && m.to == **to) {
            Some(found) => found.slots.push(slot as u16),
            None => moves.push(SlotMove { from, to: (*to).clone(), slots: vec![slot as u16] }),
        }
    }
    moves
}

fn as_int(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        _ => None,
    }
}

fn node_endpoint(node: &redis::Value, asked: &Endpoint) -> Option<Endpoint> {
    let redis::Value::Array(fields) = node else { return None };
    let host = match fields.first()? {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        redis::Value::SimpleString(text) => text.clone(),
        redis::Value::Nil => String::new(),
        _ => return None,
    };
    let port = u16::try_from(as_int(fields.get(1)?)?).ok()?;
    let host = if host.is_empty() || host == "?" { asked.host.clone() } else { host };
    Some(Endpoint { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Checked with `redis-cli -p 7000 CLUSTER KEYSLOT …` on a Redis 7 cluster.
        assert_eq!(crc16(b"123456789"), 0x31C3, "CRC16/XMODEM check value");
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), 3443);
        assert_eq!(slot(b"{user1000}.followers"), 3443);
        assert_eq!(slot(b"user1000"), 3443);
        // An empty tag hashes the whole name; only the first tag counts.
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn redirections_are_read() {
        assert_eq!(parse_redirect("MOVED 3999 127.0.0.1:6381"), Some((3999, Endpoint { host: "127.0.0.1".into(), port: 6381 })));
        assert_eq!(parse_redirect("ASK 12182 redis-b:7001"), Some((12182, Endpoint { host: "redis-b".into(), port: 7001 })));
        assert_eq!(parse_redirect("MOVED 1 ::1:7002"), Some((1, Endpoint { host: "::1".into(), port: 7002 })));
        assert_eq!(parse_redirect("MOVED 1 [::1]:7002"), Some((1, Endpoint { host: "::1".into(), port: 7002 })));
        assert_eq!(parse_redirect("MOVED 16384 h:1"), None, "no such slot");
        assert_eq!(parse_redirect("MOVED 12 h"), None);
        assert_eq!(parse_redirect("ERR unknown command"), None);
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![Value::BulkString(host.as_bytes().to_vec()), Value::Int(port), Value::BulkString(b"id".to_vec())])
    }

    #[test]
    fn cluster_slots_reply_is_read() {
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node("127.0.0.1", 7001), node("127.0.0.1", 7004)]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node("", 7000), node("127.0.0.1", 7003)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node("127.0.0.1", 7002)]),
        ]);
        let asked = Endpoint { host: "10.0.0.1".into(), port: 7000 };
        let map = SlotMap::from_cluster_slots(&reply, &asked).unwrap();
        assert_eq!(map.ranges[0].primary, asked, "an empty host is the node asked");
        assert_eq!(map.range_of(slot(b"foo")).unwrap().primary.port, 7002);
        assert_eq!(map.range_of(5461).unwrap().replicas, vec![Endpoint { host: "127.0.0.1".into(), port: 7004 }]);
        assert_eq!(map.shards().iter().map(|(first, _)| *first).collect::<Vec<_>>(), vec![0, 5461, 10923]);
        assert_eq!(map.nodes().len(), 5);
        assert_eq!(SlotMap::from_cluster_slots(&Value::Int(1), &asked), None);
    }

    fn map_of(ranges: &[(u16, u16, u16)]) -> SlotMap {
        let endpoint = |port| Endpoint { host: "127.0.0.1".into(), port };
        SlotMap {
            ranges: ranges.iter().map(|&(start, end, port)| SlotRange { start, end, primary: endpoint(port), replicas: vec![] }).collect(),
        }
    }

    #[test]
    fn a_slot_moves_only_when_its_own_primary_gave_it_up() {
        let endpoint = |port| Endpoint { host: "127.0.0.1".into(), port };
        // Shard 0 (7000) owns 0..=5460, shard 1 (7001) 5461..=10922, shard 2 (7002) the rest.
        let mut table = vec![0u8; usize::from(SLOTS)];
        table[5461..=10922].fill(1);
        table[10923..].fill(2);
        let before = map_of(&[(0, 5460, 7000), (5461, 10922, 7001), (10923, 16383, 7002)]);
        let views = |maps: [&SlotMap; 3]| -> Vec<(usize, Endpoint, SlotMap)> {
            maps.iter().enumerate().map(|(shard, map)| (shard, endpoint(7000 + shard as u16), (*map).clone())).collect()
        };
        let primaries: Vec<Option<Endpoint>> = (7000..7003).map(|port| Some(endpoint(port))).collect();
        assert_eq!(slot_moves(&table, &primaries, &views([&before, &before, &before]), &[]), vec![], "nothing moved");

        // Slots 100..=102 migrated from 7000 to 7002, and 7000 knows it.
        let after = map_of(&[(0, 99, 7000), (100, 102, 7002), (103, 5460, 7000), (5461, 10922, 7001), (10923, 16383, 7002)]);
        let moves = slot_moves(&table, &primaries, &views([&after, &before, &before]), &[]);
        assert_eq!(moves, vec![SlotMove { from: 0, to: endpoint(7002), slots: vec![100, 101, 102] }]);

        // The target knows first (CLUSTER SETSLOT … NODE on the target, then the source): the
        // source still serves the slots, so they stay until it gives them up.
        assert_eq!(
            slot_moves(&table, &primaries, &views([&before, &before, &after]), &[]),
            vec![],
            "the target's word does not move a slot"
        );
        // A lagging node's stale view of another shard's slots changes nothing either.
        let stale = map_of(&[(0, 16383, 7001)]);
        assert_eq!(slot_moves(&table, &primaries, &views([&before, &stale, &before]), &[]), vec![]);

        // A MOVED reply is the source's word too; one about a slot already routed there is stale.
        let moves = slot_moves(&table, &primaries, &views([&before, &before, &before]), &[(7, endpoint(7001)), (11000, endpoint(7002))]);
        assert_eq!(moves, vec![SlotMove { from: 0, to: endpoint(7001), slots: vec![7] }]);
        // To a primary no shard has yet (a new node): still a move, to that endpoint.
        let moves = slot_moves(&table, &primaries, &[], &[(16000, endpoint(7009))]);
        assert_eq!(moves, vec![SlotMove { from: 2, to: endpoint(7009), slots: vec![16000] }]);

        // A slot the primary reports as unassigned stays where it is.
        let gap = map_of(&[(0, 99, 7000), (103, 5460, 7000)]);
        assert_eq!(slot_moves(&table, &primaries, &views([&gap, &before, &before]), &[]), vec![]);
    }
}
