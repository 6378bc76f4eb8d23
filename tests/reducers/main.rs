//! Reducers end to end (issue 5): every test starts the real `hapnd` with the C# runtime (`--dotnet-host`, a Release
//! build of `dotnet-host`) and uploads real C# over HTTP; the server compiles it in the jailed compiler and runs it in
//! jailed workers on the append path. `support` holds the plumbing; each other module is one area of the contract's
//! "Reducers" section (`server/docs/http-api.md`) written as scenarios. The C# programs are real files: the issue's
//! `OrderReducer` in `tests/legit/`, the others in `tests/reducers/code/`.

#[path = "../shared/dotnet_build.rs"]
mod dotnet_build;
// Shared with the `api` suite, which uses all of it; this suite uses a part.
#[allow(dead_code)]
#[path = "../api/harness.rs"]
mod harness;
mod support;

mod append_state;
mod archives;
mod binding;
mod compile_errors;
mod concurrency;
mod failures;
mod isolation;
mod rebuild;
mod restart;
mod upload;
