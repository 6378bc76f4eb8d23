//! Hapnd's server: the HTTP API, the catalog of tenants and keys, and the event store.
//!
//! Layers point one way: [`api`] (HTTP/JSON) → [`store`] and [`catalog`] (traits and domain types) → their SQLite
//! backends. See ARCHITECTURE.md for the map.

pub mod api;
pub mod catalog;
pub mod code;
pub mod config;
pub mod db;
pub mod metrics;
pub mod projections;
pub mod runtime;
pub mod signing_key;
pub mod store;
pub mod time_util;
