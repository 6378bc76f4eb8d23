//! Uploaded code: sources in (JSON or an archive), compiled in the background, recorded in the registry, and for
//! reducers, bound to aggregate types and run on the append path.

pub mod apply_queue;
pub mod archive;
pub mod fold;
pub mod heads;
pub mod reducers;
pub mod registry;
mod zip;

pub use reducers::{BoundReducer, CodeError, CodeRuntime, Reducers, StateLookup};
