//! Prometheus metrics at `/metrics`: hub connections and messages, backplane counters, jobs.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::health::Backplane;
use crate::state::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding several apps); ours
            // then only renders what it sees, which is still valid output.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `GET /metrics`: refreshes the gauges read from the backplane and the job store, then renders.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    if let Backplane::Redis(m) = &state.health.backplane {
        let c = m.counters();
        metrics::gauge!("signalr_redis_published_total").set(c.published as f64);
        metrics::gauge!("signalr_redis_received_total").set(c.received as f64);
        metrics::gauge!("signalr_redis_reconnects_total").set(c.reconnects as f64);
        metrics::gauge!("signalr_redis_publish_queue").set(c.queued as f64);
        metrics::gauge!("signalr_redis_dropped_total").set(c.dropped as f64);
        metrics::gauge!("signalr_redis_invalid_total").set(c.invalid as f64);
    }
    metrics::gauge!("signalr_backplane_healthy").set(if state.health.backplane.is_healthy() { 1.0 } else { 0.0 });
    if let Ok(counts) = state.jobs.counts().await {
        for (job_state, n) in counts {
            metrics::gauge!("jobs_by_state", "state" => job_state.as_str()).set(n as f64);
        }
    }
    if let Ok(pending) = crate::notifications::outbox::unsent_count(&state.db).await {
        metrics::gauge!("diquis_notifications_unsent").set(pending as f64);
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], install().render())
}
