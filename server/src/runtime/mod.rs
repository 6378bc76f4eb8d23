//! User code at run time: the C# compiler and the .NET worker, both jailed by the executor and kept warm in its
//! pools. `protocol` is the one definition of what the server sends them (the C# side mirrors it in `dotnet-host/`);
//! `dotnet` says how they are jailed; `artifact` is a signed, content-addressed compile result; `compiler` turns an
//! upload into an artifact; `workers` runs artifacts with typed failures; `projection_session` runs a projection
//! version through the log in one worker.
//!
//! Nothing here speaks HTTP or knows tenants: callers key workers by whatever keeps tenants apart.

pub mod artifact;
pub mod compiler;
pub mod dotnet;
pub mod projection_session;
pub mod protocol;
mod session_worker;
pub mod workers;

pub use artifact::{Artifact, ArtifactKind};
pub use compiler::{CompileError, CompileRejection, Compiler};
pub use dotnet::{DotnetHost, DotnetHostError};
pub use workers::{ArtifactWorkers, Failure};
