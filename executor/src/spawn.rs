//! Starting a jail: `clone` into a new pid namespace, exec the init program with an empty environment, hand it its
//! [`InitSpec`] over the control socket, and wait until it has exec'd the program (the socket closes) or reports
//! the step that failed.
//!
//! Between `clone` and `execve` the child shares the memory of a multi-threaded process, so it only makes
//! async-signal-safe calls (`fcntl`, `dup2`, `execve`, `_exit`) on data prepared before the clone.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::init::protocol::{CONTROL_FD, InitFailure, InitSpec};

/// How each standard stream of the jailed program is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioMode {
    /// A pipe to the supervisor.
    Piped,
    /// The supervisor's own stream (for `hapnd sandbox exec`).
    Inherit,
    /// `/dev/null`.
    Null,
}

/// A process that was cloned and became the jail's init; its pidfd is what the supervisor waits on and kills with.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// The supervisor's ends of the piped streams (stdin, stdout, stderr).
    pub stdio: [Option<OwnedFd>; 3],
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}: {1}")]
    Os(&'static str, std::io::Error),
    #[error("the jail could not be set up at step {}: {}", .0.step, .0.message)]
    Setup(InitFailure),
    #[error("the jail's init sent an unreadable report: {0}")]
    Report(String),
    #[error("{0:?} contains a NUL byte")]
    Nul(std::path::PathBuf),
}

/// Longest the init may take to set the jail up before the spawn is abandoned.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Clones and execs `init_program` as the jail's init and sets the jail up from `spec`. Blocking.
pub(crate) fn spawn(init_program: &Path, spec: &InitSpec, stdio: [StdioMode; 3]) -> Result<Spawned, SpawnError> {
    let program =
        CString::new(init_program.as_os_str().as_bytes()).map_err(|_| SpawnError::Nul(init_program.into()))?;
    // argv[0] names the role, so a multi-call binary (`hapnd` itself) knows to act as the init.
    let name = CString::new(crate::init::INIT_NAME).map_err(|_| SpawnError::Nul(init_program.into()))?;
    let argv: [*const libc::c_char; 2] = [name.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];

    let (supervisor_end, init_end) = UnixStream::pair().map_err(|e| SpawnError::Os("socketpair", e))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| SpawnError::Os("open /dev/null", e))?;
    // For each stream: the descriptor the child gets, and the supervisor's end when piped.
    let mut child_fds: Vec<OwnedFd> = Vec::with_capacity(3);
    let mut ours: [Option<OwnedFd>; 3] = [None, None, None];
    for (index, mode) in stdio.iter().enumerate() {
        let child = match mode {
            StdioMode::Piped => {
                let (read, write) = pipe()?;
                if index == 0 {
                    ours[0] = Some(write);
                    read
                } else {
                    ours[index] = Some(read);
                    write
                }
            }
            StdioMode::Inherit => dup_cloexec(index as RawFd)?,
            StdioMode::Null => dup_cloexec(null.as_raw_fd())?,
        };
        child_fds.push(child);
    }
    let sources: [RawFd; 4] = [
        child_fds[0].as_raw_fd(),
        child_fds[1].as_raw_fd(),
        child_fds[2].as_raw_fd(),
        init_end.as_raw_fd(),
    ];

    let child = ChildArgs {
        sources,
        program: program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
    };
    // The child runs on its own stack while this thread waits (CLONE_VFORK) until it has exec'd, and shares this
    // process's memory (CLONE_VM) instead of copying its page tables, which would cost more the larger the
    // supervisor grows. This is how posix_spawn starts processes.
    let mut stack = vec![0_u8; CHILD_STACK_BYTES];
    // SAFETY: one past the end of `stack`, rounded down to the 16 bytes the ABI wants; the stack grows down into it.
    let stack_top = unsafe { stack.as_mut_ptr().add(CHILD_STACK_BYTES) }.map_addr(|a| a & !15);
    let mut pidfd: RawFd = -1;
    let blocked = block_all_signals();
    // SAFETY: `child_main` only makes async-signal-safe calls on `child`, which outlives the child's use of it: with
    // CLONE_VFORK this thread resumes only after the child exec'd or exited. Signals stay blocked until then, so no
    // handler of this process runs on the child's stack. With CLONE_PIDFD the pidfd is stored through `parent_tid`.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack_top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_NEWPID | libc::CLONE_PIDFD | libc::SIGCHLD,
            (&child as *const ChildArgs).cast_mut().cast(),
            &mut pidfd as *mut RawFd,
        )
    };
    let clone_error = std::io::Error::last_os_error();
    restore_signals(&blocked);
    drop(stack);
    if pid < 0 {
        return Err(SpawnError::Os("clone", clone_error));
    }
    let pid = pid as libc::pid_t;
    // SAFETY: clone with CLONE_PIDFD stored a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(child_fds);
    drop(init_end);
    let spawned = Spawned {
        pid,
        pidfd,
        stdio: ours,
    };
    match hand_over(supervisor_end, spec) {
        Ok(()) => Ok(spawned),
        Err(error) => {
            kill_and_reap(spawned, SETUP_TIMEOUT);
            Err(error)
        }
    }
}

/// Sends the spec, then waits for the socket to close (exec done) or for a failure report.
fn hand_over(mut control: UnixStream, spec: &InitSpec) -> Result<(), SpawnError> {
    let body = serde_json::to_vec(spec).map_err(|e| SpawnError::Report(e.to_string()))?;
    let length = u32::try_from(body.len()).map_err(|_| SpawnError::Report("spec too large".into()))?;
    control
        .set_read_timeout(Some(SETUP_TIMEOUT))
        .map_err(|e| SpawnError::Os("set the setup timeout", e))?;
    control
        .write_all(&length.to_le_bytes())
        .and_then(|()| control.write_all(&body))
        .map_err(|e| SpawnError::Os("send the spec to the jail's init", e))?;
    let mut report = Vec::new();
    control
        .read_to_end(&mut report)
        .map_err(|e| SpawnError::Os("wait for the jail's init", e))?;
    if report.is_empty() {
        return Ok(());
    }
    let failure: InitFailure =
        serde_json::from_slice(&report).map_err(|_| SpawnError::Report(String::from_utf8_lossy(&report).into()))?;
    Err(SpawnError::Setup(failure))
}

/// SIGKILL through the pidfd (no pid reuse race), then reap; if the process has not ended within `within` (the
/// signal failed, or the process is stuck in the kernel), it is reaped by a background thread instead of blocking.
pub(crate) fn kill_and_reap(spawned: Spawned, within: Duration) {
    if let Err(error) = send_sigkill(spawned.pidfd.as_raw_fd()) {
        tracing::error!(%error, pid = spawned.pid, "kill a jail's init");
    }
    match wait_exit_within(spawned.pidfd.as_raw_fd(), within) {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::error!(
                pid = spawned.pid,
                ?within,
                "a killed jail's init did not end; reaping it in the background"
            );
            reap_in_background(spawned, || {});
        }
        Err(error) => tracing::warn!(%error, pid = spawned.pid, "reap a jail's init"),
    }
}

/// Sends SIGKILL through `pidfd`. A process that is already gone counts as killed.
pub(crate) fn send_sigkill(pidfd: RawFd) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal on a descriptor; null info and flags 0 are valid, and a failure is reported.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(error)
}

/// Waits at most `timeout` for the process behind `pidfd` to exit, then reaps it; `None` when it is still running.
pub(crate) fn wait_exit_within(pidfd: RawFd, timeout: Duration) -> std::io::Result<Option<(bool, i32)>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut poll = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd; a pidfd becomes readable when its process exits.
        let rc = unsafe { libc::poll(&mut poll, 1, millis) };
        if rc > 0 {
            return wait_exit(pidfd).map(Some);
        }
        if rc == 0 {
            return Ok(None);
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

/// Reaps `spawned` on a thread of its own whenever it ends, then runs `after` (for example removing its cgroup):
/// for a process that did not end when killed, so that no caller blocks on it.
pub(crate) fn reap_in_background(spawned: Spawned, after: impl FnOnce() + Send + 'static) {
    let pid = spawned.pid;
    let reaper = std::thread::Builder::new()
        .name(format!("hapnd-reap-{pid}"))
        .spawn(move || {
            if let Err(error) = wait_exit(spawned.pidfd.as_raw_fd()) {
                tracing::warn!(%error, pid, "reap a jail in the background");
            }
            drop(spawned);
            after();
        });
    if let Err(error) = reaper {
        tracing::error!(%error, pid, "start a thread to reap a jail; it stays a zombie until hapnd exits");
    }
}

/// Blocks until the process behind `pidfd` exits and reaps it: `(exited normally, code or signal)`.
pub(crate) fn wait_exit(pidfd: RawFd) -> std::io::Result<(bool, i32)> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid out-value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with a valid pidfd and out-pointer.
        let rc = unsafe { libc::waitid(libc::P_PIDFD, pidfd as libc::id_t, &mut info, libc::WEXITED) };
        if rc == 0 {
            // SAFETY: after a successful waitid with WEXITED, si_code and si_status are set.
            let (code, status) = unsafe { (info.si_code, info.si_status()) };
            return Ok((code == libc::CLD_EXITED, status));
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

const CHILD_STACK_BYTES: usize = 64 * 1024;

/// What the child needs, prepared before the clone.
struct ChildArgs {
    /// The descriptors that become 0, 1, 2 and the control socket (3).
    sources: [RawFd; 4],
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
}

/// The child's side: descriptors into place, then exec; `_exit(127)` if anything fails.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive until this child execs (CLONE_VFORK).
    let args = unsafe { &*(arg as *const ChildArgs) };
    // Move every source above the targets first, so that placing one cannot overwrite another.
    let mut high = [0 as RawFd; 4];
    for (index, source) in args.sources.iter().enumerate() {
        // SAFETY: fcntl is async-signal-safe.
        high[index] = unsafe { libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, 16) };
        if high[index] < 0 {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(127) };
        }
    }
    for (target, source) in high.iter().enumerate() {
        // dup2 clears close-on-exec on the target, which is what keeps 0..=3 open across exec.
        // SAFETY: dup2 is async-signal-safe.
        if unsafe { libc::dup2(*source, target as RawFd) } < 0 {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(127) };
        }
    }
    debug_assert_eq!(CONTROL_FD, 3);
    // SAFETY: execve is async-signal-safe; the arrays are null-terminated and outlive the call.
    unsafe { libc::execve(args.program, args.argv, args.envp) };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(127) }
}

/// Blocks every signal in this thread, returning the mask to restore.
fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t values initialised by sigfillset/pthread_sigmask before use.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

fn restore_signals(mask: &libc::sigset_t) {
    // SAFETY: a mask returned by pthread_sigmask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: a valid two-element out-array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SpawnError::Os("pipe2", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A batch request is a few hundred KiB: with the default 64 KiB buffer the supervisor and the worker take
    // turns on every 64 KiB, each turn a wake-up of the other. Best effort: the kernel caps the size at
    // /proc/sys/fs/pipe-max-size and a failure leaves the default, which only costs speed.
    // SAFETY: fcntl on a descriptor we own; the result is checked by ignoring failure deliberately.
    let _ = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
    Ok((read, write))
}

/// The capacity asked for the supervisor's pipes to a jail (the kernel's default ceiling for unprivileged pipes).
const PIPE_BYTES: libc::c_int = 1024 * 1024;

fn dup_cloexec(fd: RawFd) -> Result<OwnedFd, SpawnError> {
    // SAFETY: fcntl on a descriptor; a failure is reported.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(SpawnError::Os("dup", std::io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}
