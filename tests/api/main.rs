//! The end-to-end suite: every test starts the real `hapnd` binary on its own temp data dir and talks to it over
//! HTTP and through its command-line tool, as a client would. `harness` holds the plumbing; each other module is
//! one area of the HTTP API contract (`docs/http-api.md`) written as scenarios.

mod harness;

mod aggregate_type;
mod append;
mod auth;
mod batch;
mod concurrency;
mod config;
mod crash;
mod idempotency;
mod lifecycle;
mod ops;
mod read;
mod routing;
mod tenants;
mod validation;
