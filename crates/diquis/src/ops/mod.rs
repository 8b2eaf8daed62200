//! Operations: health checks ([`health`]), Prometheus metrics ([`metrics`]), logging
//! ([`logging`]), CORS ([`cors`]) and graceful shutdown ([`shutdown`]).

pub mod cors;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod shutdown;
