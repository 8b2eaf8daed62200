//! How connections are spread over worker processes, target URLs, source addresses and groups.

use std::net::Ipv4Addr;
use std::ops::Range;

/// Ports one source address can use towards one listener (32768–60999), with some headroom.
pub const PORTS_PER_SOURCE: usize = 25_000;

/// The global layout of a run: connection `k` (0-based, over all workers) goes to
/// `urls[k % urls]`, from `sources[(k / urls) % sources]`, into group `k / group_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Number of target URLs (nodes).
    pub urls: usize,
    /// Number of source addresses.
    pub sources: usize,
    /// Members per group, when the scenario uses groups.
    pub group_size: Option<usize>,
}

impl Layout {
    /// The URL index of connection `k`.
    pub fn url_of(&self, k: usize) -> usize {
        k % self.urls.max(1)
    }

    /// The source address index of connection `k`. Connections to one URL cycle over the
    /// addresses, so each (source, URL) pair gets an even share of ports.
    pub fn source_of(&self, k: usize) -> usize {
        (k / self.urls.max(1)) % self.sources.max(1)
    }

    /// The group index of connection `k`, if groups are used.
    pub fn group_of(&self, k: usize) -> Option<usize> {
        self.group_size.map(|size| k / size.max(1))
    }
}

/// The number of groups `connections` fill at `group_size` members each.
pub fn group_count(connections: usize, group_size: usize) -> usize {
    connections.div_ceil(group_size.max(1))
}

/// Splits `connections` into `workers` contiguous ranges whose sizes differ by at most one.
pub fn worker_ranges(connections: usize, workers: usize) -> Vec<Range<usize>> {
    let workers = workers.max(1);
    let base = connections / workers;
    let extra = connections % workers;
    let mut start = 0;
    (0..workers)
        .map(|w| {
            let len = base + usize::from(w < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

/// Worker processes needed: enough that none holds more than `max_per_worker` sockets, and at
/// least `min_workers` (but never more workers than connections).
pub fn worker_count(connections: usize, max_per_worker: usize, min_workers: usize) -> usize {
    connections.div_ceil(max_per_worker.max(1)).max(min_workers).min(connections.max(1))
}

/// Source addresses needed so no (source, URL) pair needs more than [`PORTS_PER_SOURCE`] ports.
pub fn source_count(connections: usize, urls: usize) -> usize {
    connections.div_ceil(urls.max(1)).div_ceil(PORTS_PER_SOURCE).max(1)
}

/// The `count` loopback source addresses 127.0.0.1, 127.0.0.2, …
pub fn loopback_sources(count: usize) -> Vec<Ipv4Addr> {
    (0..count).map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + i as u32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_evenly() {
        let ranges = worker_ranges(10, 3);
        assert_eq!(ranges, vec![0..4, 4..7, 7..10]);
        assert_eq!(worker_ranges(0, 2), vec![0..0, 0..0]);
    }

    #[test]
    fn worker_and_source_counts_respect_the_machine_limits() {
        assert_eq!(worker_count(100_000, 15_000, 2), 7);
        assert_eq!(worker_count(300, 15_000, 2), 2);
        assert_eq!(worker_count(1, 15_000, 2), 1);
        assert_eq!(source_count(15_000, 1), 1);
        assert_eq!(source_count(100_000, 6), 1);
        assert_eq!(source_count(60_000, 1), 3);
    }

    #[test]
    fn every_source_url_pair_gets_an_even_share() {
        let layout = Layout { urls: 2, sources: 3, group_size: None };
        let mut pairs = std::collections::HashMap::new();
        for k in 0..600 {
            *pairs.entry((layout.url_of(k), layout.source_of(k))).or_insert(0) += 1;
        }
        assert_eq!(pairs.len(), 6);
        assert!(pairs.values().all(|&n| n == 100));
    }

    #[test]
    fn groups_of_connections() {
        let layout = Layout { urls: 1, sources: 1, group_size: Some(10) };
        assert_eq!(layout.group_of(9), Some(0));
        assert_eq!(layout.group_of(10), Some(1));
        assert_eq!(group_count(95, 10), 10);
    }

    #[test]
    fn loopback_sources_count_up() {
        assert_eq!(loopback_sources(3), vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)]);
    }
}
