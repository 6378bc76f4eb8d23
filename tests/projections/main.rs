//! Projections end to end (issue 6): every test starts the real `hapnd` with the C# runtime (`--dotnet-host`) and
//! deploys real C# over HTTP; the server compiles it in the jailed compiler and runs each version through the
//! tenant's log in jailed workers. `support` holds the plumbing; the C# programs are in `tests/projections/code/`.

#[path = "../shared/dotnet_build.rs"]
mod dotnet_build;
// Shared with the `api` suite, which uses all of it; this suite uses a part.
#[allow(dead_code)]
#[path = "../api/harness.rs"]
mod harness;
mod support;

mod deploy;
mod failures;
mod hot_swap;
mod mailbox;
mod restart;
