//! What a jail contains and what it may use: the caller's whole say over a jailed program.
//!
//! Every field narrows the jail; none widens it. There is no way to keep a capability, share a host namespace, skip
//! Landlock or seccomp, or run as root.

use std::path::PathBuf;
use std::time::Duration;

/// One jailed program.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Absolute path of the program, as seen inside the jail (it must lie under one of `read_only`).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The program's `argv[0]`; its path when `None`. Multi-call binaries choose their role by it.
    pub argv0: Option<String>,
    /// Host paths the program may read (and execute), mounted read-only at the same place inside the jail. Nothing
    /// else of the host is visible.
    pub read_only: Vec<PathBuf>,
    /// The one writable place: a size-limited tmpfs, empty at start.
    pub scratch: Scratch,
    /// The program's whole environment; nothing is inherited.
    pub env: Vec<(String, String)>,
    /// Working directory inside the jail; the scratch dir when `None`.
    pub cwd: Option<PathBuf>,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct Scratch {
    /// Where the scratch tmpfs appears inside the jail.
    pub path: PathBuf,
    pub size_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory of the whole jail (cgroup), page cache of the scratch tmpfs included. No swap.
    pub memory_bytes: u64,
    /// CPU time per wall-clock time, in thousandths of a core: 1000 = one core.
    pub cpu_millicores: u32,
    /// Processes and threads in the jail.
    pub pids: u32,
    /// Open files per process.
    pub open_files: u64,
    /// Largest file a process may write.
    pub file_size_bytes: u64,
    /// Wall-clock time one request may take before the whole jail is killed.
    pub request_timeout: Duration,
    /// Bytes the program may write to its standard output and error before it is treated as misbehaving.
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 * 1024 * 1024,
            cpu_millicores: 1000,
            pids: 64,
            open_files: 256,
            file_size_bytes: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            output_bytes: 16 * 1024 * 1024,
        }
    }
}

impl SandboxSpec {
    /// A spec for `program` with the default limits, a 64 MiB scratch at `/tmp` and an empty environment.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            program: program.into(),
            args: Vec::new(),
            argv0: None,
            read_only: Vec::new(),
            scratch: Scratch {
                path: PathBuf::from("/tmp"),
                size_bytes: 64 * 1024 * 1024,
            },
            env: Vec::new(),
            cwd: None,
            limits: Limits::default(),
        }
    }
}
