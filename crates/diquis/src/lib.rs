//! Diquis: tenants provisioned by background jobs and notified live in the browser over an
//! ASP.NET Core SignalR compatible hub, on one machine (SQLite, in-process backplane) or many
//! (PostgreSQL, Redis backplane shared with .NET nodes).
//!
//! Modules, one purpose each: [`config`] (ASP.NET-style configuration), [`db`] (PostgreSQL or
//! SQLite), [`auth`] (passwords, JWT, session cookie, CSRF, hub authentication), [`tenants`]
//! (API and jobs), [`job_outbox`] (handing jobs to a job storage in another database),
//! [`notifications`] (events, outbox, publisher, hub), [`outbox_loop`] (draining an outbox), [`web`] (router, UI),
//! [`ops`] (health, metrics, logs, CORS, shutdown), [`cli`] and [`app`] (process start and stop).

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod job_outbox;
pub mod notifications;
pub mod ops;
pub mod outbox_loop;
pub mod security;
pub mod state;
pub mod tenants;
pub mod web;

pub use app::{RunningApp, StartError, start};
pub use state::ProcessRole;
