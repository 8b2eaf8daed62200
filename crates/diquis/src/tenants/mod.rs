//! Tenants: the model ([`model`]), input checks ([`validation`]), storage ([`repo`]), the REST
//! API ([`api`]), the provisioning and update jobs ([`jobs`]), isolated databases ([`isolated`])
//! and the status as shown ([`outlook`]).

pub mod admin_password;
pub mod api;
pub mod isolated;
pub mod jobs;
pub mod model;
pub mod outlook;
pub mod repo;
pub mod validation;
