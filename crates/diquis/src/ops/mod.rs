//! Operations: health checks ([`health`]), Prometheus metrics ([`metrics`]), logging
//! ([`logging`]), CORS ([`cors`]), the hourly clean-up job ([`housekeeping`]), graceful shutdown ([`shutdown`]) and start-up checks ([`startup`]).

pub mod cors;
pub mod health;
pub mod housekeeping;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod startup;
