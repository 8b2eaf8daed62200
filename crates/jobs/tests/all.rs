//! Integration tests: every feature against PostgreSQL (a fresh database per test) and SQLite
//! (a fresh file per test).

#[path = "suite/common.rs"]
mod common;
#[path = "suite/crash.rs"]
mod crash;
#[path = "suite/dashboard.rs"]
mod dashboard;
#[path = "suite/execution.rs"]
mod execution;
#[path = "suite/scheduling.rs"]
mod scheduling;
#[path = "suite/servers.rs"]
mod servers;
