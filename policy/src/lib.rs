//! Hapnd's sandbox policies as data, and their parsers.
//!
//! Each policy is a file in this crate with a justification (`why`) on every entry, embedded with `include_str!` and
//! parsed into typed values that the executor turns into kernel objects. This crate does no I/O and knows nothing of
//! processes: it does not even map syscall names to numbers (the executor does that with the C library's constants).
//!
//! It holds the seccomp deny-list ([`sandbox_seccomp_policy`]), the C# API allowlist ([`csharp`]) and artifact signing
//! ([`signing`]).

pub mod csharp;
pub mod seccomp;
pub mod signing;

pub use seccomp::{
    ArgCondition, ArgOp, ArgWidth, DenyAction, DenyRule, Errno, PolicyError, RuleProblem, SeccompPolicy,
    parse_seccomp_policy, sandbox_seccomp_policy,
};
