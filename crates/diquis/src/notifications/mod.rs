//! Live notifications: the four tenant events ([`event`]), the outbox they are written to in
//! the job's final transaction ([`outbox`]), the publisher that sends them through the hub's
//! lifetime manager ([`publisher`]), the hub itself ([`hub`]) and the catch-up API ([`api`]).

pub mod api;
pub mod event;
pub mod hub;
pub mod outbox;
pub mod publisher;
