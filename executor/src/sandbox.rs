//! The supervisor's side of a jail: checks the host once ([`Sandbox::new`]), then starts jails from a
//! [`SandboxSpec`] ([`Sandbox::start`]), waits for them, kills them, and explains how they ended ([`Outcome`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::cgroup::{Cgroup, CgroupError, CgroupLayout};
use crate::cgroup_owner::CgroupOwner;
use crate::init::protocol::{BpfInstruction, ExecPlan, INIT_PROTOCOL_VERSION, InitSpec, Rlimit, RootPlan};
use crate::jail_user::{self, DEFAULT_JAIL_GID, DEFAULT_JAIL_UID, JailUserError};
use crate::seccomp::{self, SeccompError};
use crate::spawn::{self, SpawnError, Spawned, StdioMode};
use crate::spec::SandboxSpec;

/// How long a killed jail may take to end by default: SIGKILL normally takes effect within milliseconds.
pub const DEFAULT_KILL_WAIT: Duration = Duration::from_secs(5);

/// How the supervisor runs jails on this host.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The jail's init: `hapnd-sandbox-init`, or any binary that calls `hapnd_executor::init::main()` first thing
    /// when started under the name [`crate::init::INIT_NAME`] (it is exec'd with that `argv[0]`).
    pub init_program: PathBuf,
    /// The cgroup (under each hierarchy on v1) that holds the jails' cgroups.
    pub cgroup_parent: String,
    /// The uid and gid jailed programs run as: never 0, and held by no host account but `hapnd-jail` (see
    /// [`crate::jail_user`]). The defaults are [`DEFAULT_JAIL_UID`] and [`DEFAULT_JAIL_GID`], the first ids of the
    /// range hapnd reserves (61000–61183).
    pub uid: u32,
    pub gid: u32,
    /// How long a killed jail may take to end. Past it, waiting gives up with [`SandboxError::KillTimeout`] rather
    /// than hang, and the jail is reaped in the background whenever it does end.
    pub kill_wait: Duration,
}

impl SandboxConfig {
    pub fn new(init_program: impl Into<PathBuf>) -> Self {
        SandboxConfig {
            init_program: init_program.into(),
            cgroup_parent: "hapnd".into(),
            uid: DEFAULT_JAIL_UID,
            gid: DEFAULT_JAIL_GID,
            kill_wait: DEFAULT_KILL_WAIT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "the sandbox needs root: it creates namespaces, cgroups and mounts for each jail (running as uid {0}; \
         non-root operation with delegated cgroups is not supported yet)"
    )]
    NotRoot(u32),
    #[error(transparent)]
    JailUser(#[from] JailUserError),
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("/proc/self/stat is unreadable: the sandbox needs /proc mounted")]
    NoProc,
    #[error("the jail's init program {0} does not exist or is not executable")]
    MissingInit(PathBuf),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("wait for the jail: {0}")]
    Wait(std::io::Error),
    #[error("the blocking spawn task failed: {0}")]
    Task(String),
    #[error(
        "the jail (pid {pid}) did not end within {waited:?} of being killed; it is reaped in the background if it \
         ever ends (does hapnd have CAP_KILL?)"
    )]
    KillTimeout { pid: i32, waited: Duration },
}

/// How a jailed program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited by itself with this status.
    Exited(i32),
    /// The supervisor killed it at its deadline.
    Timeout,
    /// The kernel killed it for going over its memory limit.
    OutOfMemory,
    /// The seccomp filter killed it (SIGSYS).
    SeccompKilled,
    /// It wrote more than its output limit and was killed.
    OutputLimit,
    /// It died of this signal.
    Signaled(i32),
}

/// What the jail's counters and clock add to the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub outcome: Outcome,
    /// Some fork or clone was refused because the jail was at its pids limit.
    pub pids_limit_hit: bool,
    /// From the start of the jail to its end.
    pub elapsed: Duration,
}

/// Starts jails. One per process is enough; it is cheap to share.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    layout: CgroupLayout,
    seccomp: Vec<Vec<BpfInstruction>>,
    /// Recorded in every jail cgroup's name, so that cgroups left by a killed supervisor are known as such.
    owner: CgroupOwner,
    next_id: AtomicU64,
}

impl Sandbox {
    /// Checks that this host and process can build jails, and prepares the jails' parent cgroup.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(SandboxError::NotRoot(euid));
        }
        jail_user::check_host_accounts(
            config.uid,
            config.gid,
            Path::new(jail_user::HOST_PASSWD),
            Path::new(jail_user::HOST_GROUP),
        )?;
        if !is_executable(&config.init_program) {
            return Err(SandboxError::MissingInit(config.init_program.clone()));
        }
        let layout = CgroupLayout::detect()?;
        layout.prepare_parent(&config.cgroup_parent)?;
        let owner = CgroupOwner::current().ok_or(SandboxError::NoProc)?;
        let left_over = layout.remove_left_over(&config.cgroup_parent);
        if left_over.removed > 0 || left_over.busy > 0 {
            tracing::info!(
                removed = left_over.removed,
                still_in_use = left_over.busy,
                "removed jail cgroups left by supervisors that no longer run"
            );
        }
        let seccomp = seccomp::compile_sandbox_policy()?;
        Ok(Sandbox {
            config,
            layout,
            seccomp,
            owner,
            next_id: AtomicU64::new(0),
        })
    }

    pub fn cgroup_version(&self) -> u8 {
        self.layout.version()
    }

    /// Starts `spec` in a new jail. Blocks for the setup (a few milliseconds); async callers use
    /// [`Sandbox::start_async`].
    pub fn start(&self, spec: &SandboxSpec, stdio: [StdioMode; 3]) -> Result<Jail, SandboxError> {
        validate(spec)?;
        let started = Instant::now();
        let name = self.owner.jail_name(self.next_id.fetch_add(1, Ordering::Relaxed));
        let cgroup = self.layout.create(&self.config.cgroup_parent, &name, &spec.limits)?;
        let init = self.init_spec(spec, &cgroup);
        match spawn::spawn(&self.config.init_program, &init, stdio) {
            Ok(spawned) => Ok(Jail {
                spawned: Some(spawned),
                cgroup,
                started,
                output_limit: spec.limits.output_bytes,
                kill_wait: self.config.kill_wait,
                killed: AtomicBool::new(false),
            }),
            Err(error) => {
                if let Err(cleanup) = cgroup.remove() {
                    tracing::warn!(%cleanup, "remove the cgroup of a jail that did not start");
                }
                Err(error.into())
            }
        }
    }

    /// [`Sandbox::start`] on tokio's blocking pool.
    pub async fn start_async(
        self: &std::sync::Arc<Self>,
        spec: SandboxSpec,
        stdio: [StdioMode; 3],
    ) -> Result<Jail, SandboxError> {
        let sandbox = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || sandbox.start(&spec, stdio))
            .await
            .map_err(|e| SandboxError::Task(e.to_string()))?
    }

    /// Runs `spec` to its end with `input` on its standard input, collecting its output; the whole run is bounded
    /// by the spec's request timeout.
    pub async fn run(
        self: &std::sync::Arc<Self>,
        spec: SandboxSpec,
        input: Vec<u8>,
    ) -> Result<RunOutput, SandboxError> {
        let deadline = spec.limits.request_timeout;
        let mut jail = self.start_async(spec, [StdioMode::Piped; 3]).await?;
        let stdin = jail.take_stdin()?;
        let stdout = jail.take_stdout()?;
        let stderr = jail.take_stderr()?;
        let limit = jail.output_limit;
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // The program may exit without reading everything; that is its business.
                let _ = stdin.write_all(&input).await;
            }
        };
        let collect = async move {
            let (out, err) = tokio::join!(read_capped(stdout, limit), read_capped(stderr, limit));
            (out, err)
        };
        let work = async { tokio::join!(feed, collect).1 };
        let ((stdout, out_over), (stderr, err_over)) = match tokio::time::timeout(deadline, work).await {
            Ok(output) => output,
            Err(_) => {
                jail.kill();
                let ended = jail.wait_with(Some(Outcome::Timeout)).await?;
                return Ok(RunOutput {
                    ended,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                });
            }
        };
        let forced = if out_over || err_over {
            jail.kill();
            Some(Outcome::OutputLimit)
        } else {
            None
        };
        let remaining = deadline.saturating_sub(jail.started.elapsed());
        let ended = match tokio::time::timeout(remaining, jail.wait_until_exit()).await {
            Ok(result) => {
                result?;
                jail.wait_with(forced).await?
            }
            Err(_) => {
                jail.kill();
                jail.wait_with(Some(Outcome::Timeout)).await?
            }
        };
        Ok(RunOutput { ended, stdout, stderr })
    }

    fn init_spec(&self, spec: &SandboxSpec, cgroup: &Cgroup) -> InitSpec {
        let limits = &spec.limits;
        InitSpec {
            version: INIT_PROTOCOL_VERSION,
            cgroup_procs: cgroup.procs_files(),
            unshare_flags: libc::CLONE_NEWNS
                | libc::CLONE_NEWNET
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWUTS
                | libc::CLONE_NEWCGROUP,
            hostname: "hapnd-jail".into(),
            root: RootPlan {
                read_only: spec.read_only.clone(),
                scratch: spec.scratch.path.clone(),
                scratch_bytes: spec.scratch.size_bytes,
            },
            rlimits: vec![
                Rlimit {
                    resource: libc::RLIMIT_CORE,
                    soft: 0,
                    hard: 0,
                },
                Rlimit {
                    resource: libc::RLIMIT_NOFILE,
                    soft: limits.open_files,
                    hard: limits.open_files,
                },
                Rlimit {
                    resource: libc::RLIMIT_FSIZE,
                    soft: limits.file_size_bytes,
                    hard: limits.file_size_bytes,
                },
            ],
            uid: self.config.uid,
            gid: self.config.gid,
            seccomp: self.seccomp.clone(),
            exec: ExecPlan {
                program: spec.program.clone(),
                argv0: spec.argv0.clone(),
                args: spec.args.clone(),
                env: spec.env.clone(),
                cwd: spec.cwd.clone().unwrap_or_else(|| spec.scratch.path.clone()),
            },
        }
    }
}

/// Everything a finished [`Sandbox::run`] produced.
#[derive(Debug)]
pub struct RunOutput {
    pub ended: Ended,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A running jail. Dropping it kills and reaps it and removes its cgroup.
#[derive(Debug)]
pub struct Jail {
    spawned: Option<Spawned>,
    cgroup: Cgroup,
    started: Instant,
    output_limit: u64,
    kill_wait: Duration,
    /// Set by [`Jail::kill`]: from then on, waiting for the jail is bounded by `kill_wait`.
    killed: AtomicBool,
}

impl Jail {
    /// The pid of the jail's first process (the program), in the supervisor's pid namespace.
    pub fn pid(&self) -> Option<i32> {
        self.spawned.as_ref().map(|s| s.pid)
    }

    pub fn cgroup_dirs(&self) -> &[PathBuf] {
        self.cgroup.dirs()
    }

    pub fn take_stdin(&mut self) -> Result<Option<pipe::Sender>, SandboxError> {
        self.take_stream(0)
            .map(pipe::Sender::from_owned_fd)
            .transpose()
            .map_err(SandboxError::Wait)
    }

    pub fn take_stdout(&mut self) -> Result<Option<pipe::Receiver>, SandboxError> {
        self.take_stream(1)
            .map(pipe::Receiver::from_owned_fd)
            .transpose()
            .map_err(SandboxError::Wait)
    }

    pub fn take_stderr(&mut self) -> Result<Option<pipe::Receiver>, SandboxError> {
        self.take_stream(2)
            .map(pipe::Receiver::from_owned_fd)
            .transpose()
            .map_err(SandboxError::Wait)
    }

    fn take_stream(&mut self, index: usize) -> Option<OwnedFd> {
        self.spawned.as_mut().and_then(|s| s.stdio[index].take())
    }

    /// Kills every process of the jail: on cgroup v2 the whole cgroup at once (`cgroup.kill`), and the pid
    /// namespace's init through its pidfd (which takes the rest of the jail with it). A failure is logged, and a
    /// later wait is bounded by the config's `kill_wait`, so a kill that did not take cannot hang the supervisor.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        let pid = self.pid().unwrap_or(0);
        let group_killed = match self.cgroup.kill_all() {
            Ok(killed) => killed,
            Err(error) => {
                tracing::error!(%error, pid, "kill a jail through cgroup.kill");
                false
            }
        };
        if let Some(spawned) = &self.spawned
            && let Err(error) = spawn::send_sigkill(spawned.pidfd.as_raw_fd())
        {
            if group_killed {
                tracing::warn!(%error, pid, "send SIGKILL to a jail's init; cgroup.kill still ends the jail");
            } else {
                tracing::error!(
                    %error,
                    pid,
                    "send SIGKILL to a jail's init; the jail may keep running (does hapnd have CAP_KILL?)"
                );
            }
        }
    }

    /// Waits for the program to end, then reaps it and removes the cgroup.
    pub async fn wait(self) -> Result<Ended, SandboxError> {
        self.wait_with(None).await
    }

    /// Resolves once the jail's program has exited, without reaping it (an error ends the wait too).
    pub async fn wait_for_exit(&self) {
        if let Err(error) = self.wait_until_exit().await {
            tracing::warn!(%error, "wait for a jail");
        }
    }

    async fn wait_until_exit(&self) -> Result<(), SandboxError> {
        let Some(spawned) = &self.spawned else {
            return Ok(());
        };
        // A pidfd becomes readable when its process exits. A duplicate goes into the reactor, so that the original
        // stays with the jail for reaping and killing.
        let pidfd = spawned.pidfd.try_clone().map_err(SandboxError::Wait)?;
        // SAFETY: an OwnedFd's descriptor stays open and the same for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
            .map_err(|e| SandboxError::Wait(std::io::Error::from(e)))?;
        let _ready = fd.readable().await.map_err(SandboxError::Wait)?;
        Ok(())
    }

    async fn wait_with(mut self, forced: Option<Outcome>) -> Result<Ended, SandboxError> {
        if self.killed.load(Ordering::Relaxed) {
            if tokio::time::timeout(self.kill_wait, self.wait_until_exit())
                .await
                .is_err()
            {
                return Err(self.abandon());
            }
        } else {
            self.wait_until_exit().await?;
        }
        let Some(spawned) = self.spawned.take() else {
            return Err(SandboxError::Wait(std::io::Error::other("the jail was already reaped")));
        };
        let (exited, status) = spawn::wait_exit(spawned.pidfd.as_raw_fd()).map_err(SandboxError::Wait)?;
        let elapsed = self.started.elapsed();
        let events = self.cgroup.events();
        let outcome = match forced {
            Some(outcome) => outcome,
            None if exited => Outcome::Exited(status),
            None if events.oom_kills > 0 => Outcome::OutOfMemory,
            None if status == libc::SIGSYS => Outcome::SeccompKilled,
            None => Outcome::Signaled(status),
        };
        drop(spawned);
        let cgroup = std::mem::replace(
            &mut self.cgroup,
            Cgroup::detached(), // the real one is removed below; Drop then has nothing left to do
        );
        remove_cgroup(cgroup).await;
        Ok(Ended {
            outcome,
            pids_limit_hit: events.pids_refused > 0,
            elapsed,
        })
    }
}

impl Jail {
    /// Gives up waiting for a jail that did not end when killed: a background thread reaps it and removes its
    /// cgroup whenever it ends.
    fn abandon(&mut self) -> SandboxError {
        let pid = self.pid().unwrap_or(0);
        let waited = self.kill_wait;
        tracing::error!(pid, ?waited, "a killed jail did not end; reaping it in the background");
        if let Some(spawned) = self.spawned.take() {
            let cgroup = std::mem::replace(&mut self.cgroup, Cgroup::detached());
            spawn::reap_in_background(spawned, move || {
                if let Err(error) = cgroup.remove() {
                    tracing::warn!(%error, "remove a jail's cgroup");
                }
            });
        }
        SandboxError::KillTimeout { pid, waited }
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        if let Some(spawned) = &self.spawned {
            self.kill();
            match spawn::wait_exit_within(spawned.pidfd.as_raw_fd(), self.kill_wait) {
                Ok(Some(_)) => self.spawned = None,
                Ok(None) => {
                    self.abandon();
                }
                Err(error) => {
                    tracing::warn!(%error, pid = spawned.pid, "reap a dropped jail");
                    self.spawned = None;
                }
            }
        }
        if let Err(error) = self.cgroup.remove() {
            tracing::warn!(%error, "remove a jail's cgroup");
        }
    }
}

async fn remove_cgroup(cgroup: Cgroup) {
    let removed = tokio::task::spawn_blocking(move || cgroup.remove()).await;
    match removed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "remove a jail's cgroup"),
        Err(error) => tracing::warn!(%error, "remove a jail's cgroup"),
    }
}

/// Reads a stream to its end, keeping at most `limit` bytes; the flag says whether more came.
async fn read_capped(stream: Option<pipe::Receiver>, limit: u64) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return (kept, false),
            Ok(n) => {
                if kept.len() as u64 + n as u64 > limit {
                    let room = limit.saturating_sub(kept.len() as u64) as usize;
                    kept.extend_from_slice(&buffer[..room]);
                    return (kept, true);
                }
                kept.extend_from_slice(&buffer[..n]);
            }
        }
    }
}

fn validate(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let invalid = |message: String| Err(SandboxError::InvalidSpec(message));
    if !spec.program.is_absolute() {
        return invalid(format!(
            "the program {} must be an absolute path",
            spec.program.display()
        ));
    }
    if !spec.read_only.iter().any(|dir| spec.program.starts_with(dir)) {
        return invalid(format!(
            "the program {} is not under any read-only path, so the jail could not see it",
            spec.program.display()
        ));
    }
    for path in &spec.read_only {
        if !path.is_absolute() || path == Path::new("/") {
            return invalid(format!(
                "read-only path {} must be absolute and not `/`",
                path.display()
            ));
        }
        if !path.exists() {
            return invalid(format!("read-only path {} does not exist", path.display()));
        }
    }
    let scratch = &spec.scratch.path;
    let reserved = [Path::new("/"), Path::new("/proc"), Path::new("/dev")];
    if !scratch.is_absolute() || reserved.iter().any(|r| scratch == r || scratch.starts_with("/proc/")) {
        return invalid(format!(
            "scratch path {} must be absolute and not `/`, /proc or /dev",
            scratch.display()
        ));
    }
    if spec.scratch.size_bytes == 0 {
        return invalid("the scratch size must be above 0".into());
    }
    for (name, value) in &spec.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0') {
            return invalid(format!("environment variable {name:?} is not a valid name=value pair"));
        }
    }
    let limits = &spec.limits;
    if limits.memory_bytes == 0 || limits.cpu_millicores == 0 || limits.pids == 0 || limits.open_files == 0 {
        return invalid("memory, cpu, pids and open-file limits must be above 0".into());
    }
    if limits.request_timeout.is_zero() {
        return invalid("the request timeout must be above 0".into());
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
