//! Tenants: the model ([`model`]), input checks ([`validation`]), storage ([`repo`]), the REST
//! API ([`api`]), the provisioning and update jobs ([`jobs`]) and isolated databases ([`isolated`]).

pub mod admin_password;
pub mod api;
pub mod isolated;
pub mod jobs;
pub mod model;
pub mod repo;
pub mod validation;
