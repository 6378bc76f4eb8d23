//! What the supervisor tells the jail's init process, over the control socket (fd 3): the one type that crosses this
//! process boundary. Both sides are this crate, but a running server may start an init binary from another build, so
//! the version is checked before anything else.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Bumped on every change to [`InitSpec`].
pub const INIT_PROTOCOL_VERSION: u32 = 1;

/// The file descriptor of the control socket in the init process.
pub const CONTROL_FD: i32 = 3;

/// Everything the init needs, decided by the supervisor; the init decides nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitSpec {
    pub version: u32,
    /// `cgroup.procs` files to join (one per v1 hierarchy, one on v2).
    pub cgroup_procs: Vec<PathBuf>,
    /// Namespaces created by `unshare` (the pid namespace already exists: it was created with the process).
    pub unshare_flags: i32,
    pub hostname: String,
    pub root: RootPlan,
    pub rlimits: Vec<Rlimit>,
    pub uid: u32,
    pub gid: u32,
    /// The compiled seccomp filters, installed in order.
    pub seccomp: Vec<Vec<BpfInstruction>>,
    pub exec: ExecPlan,
}

/// The jail's root filesystem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootPlan {
    /// Host paths bound read-only at the same place.
    pub read_only: Vec<PathBuf>,
    pub scratch: PathBuf,
    pub scratch_bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct BpfInstruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecPlan {
    pub program: PathBuf,
    /// `argv[0]`; the program's path when `None`.
    pub argv0: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// The init's only message back: why the jail could not be set up. A successful `exec` closes the socket instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitFailure {
    pub step: String,
    pub message: String,
}
