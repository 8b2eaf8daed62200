//! Operations: health checks ([`health`]), Prometheus metrics ([`metrics`]), logging
//! ([`logging`]), CORS ([`cors`]), graceful shutdown ([`shutdown`]) and start-up checks ([`startup`]).

pub mod cors;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod startup;
