//! The executor: runs any program inside a jail (namespaces, cgroup, minimal root, dropped privileges, Landlock,
//! seccomp; see `JAIL.md`) and talks to it. It knows nothing of events, tenants or C#: the .NET worker and the C#
//! compiler are two programs among others.
//!
//! Layers: `server → executor → policy`. The seccomp deny-list comes from `hapnd-policy` as data.

pub mod cgroup;
pub mod cgroup_owner;
pub mod init;
pub mod jail_user;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod worker;

mod spawn;

pub use jail_user::{DEFAULT_JAIL_GID, DEFAULT_JAIL_UID};
pub use sandbox::{Ended, Jail, Outcome, RunOutput, Sandbox, SandboxConfig, SandboxError};
pub use spawn::{SpawnError, StdioMode};
pub use spec::{Limits, SandboxSpec, Scratch};
pub use worker::{
    Answer, Pool, PoolConfig, PoolError, PooledWorker, ProtocolViolation, RequestId, Worker, WorkerConfig, WorkerError,
};
