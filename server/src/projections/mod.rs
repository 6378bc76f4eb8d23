//! Projections: uploaded C# that runs asynchronously over each tenant's whole log in global order, a key grouping
//! state across aggregates. `store` is `projections.db` (versions, states, checkpoints, the change log), `runner`
//! runs one version through the log in a jailed worker, `service` deploys versions, swaps them in and serves queries.

pub mod runner;
pub mod service;
pub mod store;

pub use service::{DeployStatus, EngineSettings, ProjectionError, ProjectionView, Projections, VersionView};
pub use store::{Lookup, ProjectionStore, Version, VersionFailure, VersionStatus};
