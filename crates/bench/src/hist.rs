//! Latency histograms (microseconds) and their transfer between processes.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded, µs (one hour); larger values are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// A new latency histogram, 1 µs to one hour, three significant digits.
pub fn new_latency() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// Records `micros`, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// A histogram as (value, count) pairs, for sending between processes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistData(pub Vec<(u64, u64)>);

impl HistData {
    /// The recorded values of `histogram`.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        Self(histogram.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
    }

    /// Adds these values into `into`.
    pub fn merge_into(&self, into: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            // Values came from a histogram with the same bounds, so they fit.
            let _ = into.record_n(value.clamp(1, MAX_MICROS), count);
        }
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_keeps_counts_and_percentiles() {
        let mut original = new_latency();
        for micros in 1..=1000 {
            record(&mut original, micros * 10);
        }
        record(&mut original, u64::MAX);
        let data = HistData::from_histogram(&original);
        let text = serde_json::to_string(&data).unwrap();
        let back: HistData = serde_json::from_str(&text).unwrap();
        let mut merged = new_latency();
        back.merge_into(&mut merged);
        back.merge_into(&mut merged);
        assert_eq!(merged.len(), 2 * original.len());
        assert_eq!(merged.value_at_quantile(0.5), original.value_at_quantile(0.5));
        let summary = LatencySummary::of(&merged);
        assert!((summary.p50_ms - 5.0).abs() < 0.02, "{summary:?}");
        assert!(summary.max_ms >= 3_600_000.0);
    }

    #[test]
    fn an_empty_histogram_summarises_to_zero() {
        assert_eq!(LatencySummary::of(&new_latency()), LatencySummary::default());
    }
}
