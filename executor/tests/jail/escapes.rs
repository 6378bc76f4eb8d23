//! Every forbidden action, tried from inside the jail.

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::Stdio;
use std::time::Duration;

use hapnd_executor::{DEFAULT_JAIL_GID, DEFAULT_JAIL_UID, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{probe_dir, probe_spec, run, stdout};

/// Runs the probe with `args` and asserts it reported the action refused.
async fn assert_refused(args: &[&str]) {
    let output = run(probe_spec(args)).await;
    let line = stdout(&output);
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{args:?}: {line}");
    assert!(line.contains("refused"), "{args:?}: {line}");
}

#[tokio::test]
async fn host_files_are_not_visible() {
    for path in [
        "/etc/shadow",
        "/etc/passwd",
        "/etc/hostname",
        "/root",
        "/home",
        "/var/lib",
        "/usr/bin",
        env!("CARGO_MANIFEST_DIR"),
    ] {
        assert_refused(&["read-file", path]).await;
    }
}

#[tokio::test]
async fn nothing_outside_scratch_is_writable() {
    let inside_probe_dir = probe_dir().path.join("written");
    for path in [
        "/etc/x",
        "/usr/x",
        "/x",
        "/proc/x",
        "/dev/x",
        inside_probe_dir.to_str().expect("utf-8"),
    ] {
        assert_refused(&["write-file", path]).await;
    }
    assert!(!inside_probe_dir.exists());
}

#[tokio::test]
async fn there_is_no_network() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on the host");
    let port = listener.local_addr().expect("address").port().to_string();
    assert_refused(&["connect-tcp", "127.0.0.1", &port]).await;

    let name = format!("hapnd-probe-{}", std::process::id());
    let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let _unix = UnixListener::bind_addr(&address).expect("listen on an abstract socket on the host");
    assert_refused(&["connect-abstract", &name]).await;
}

#[tokio::test]
async fn kernel_attack_surface_is_closed() {
    for action in [
        "ptrace",
        "mount",
        "unshare",
        "setns",
        "clone-newuser",
        "bpf",
        "keyctl",
        "io-uring",
        "userfaultfd",
        "seccomp-change",
        "write-cgroup",
        "exec-sh",
    ] {
        assert_refused(&[action]).await;
    }
}

#[tokio::test]
async fn clone3_fails_with_enosys_so_libc_falls_back_to_clone() {
    let output = run(probe_spec(&["clone3"])).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("ENOSYS"), "{}", stdout(&output));
}

/// TIOCSTI pushes characters into a terminal's input: a classic escape from a jail sharing the caller's terminal.
/// The request number is compared on its low 32 bits, as the kernel reads it; the high-bits variant proves it.
#[tokio::test]
async fn terminal_injection_is_refused_even_with_high_bits_set() {
    assert_refused(&["tiocsti"]).await;
    assert_refused(&["tiocsti-high"]).await;
}

/// membarrier's global command interrupts every CPU of the host. The .NET runtime probes it and falls back when it
/// fails, so the policy answers `EPERM` (`policy/seccomp.toml`): an error, not a kill, which would break the runtime.
#[tokio::test]
async fn membarrier_fails_with_eperm_instead_of_killing() {
    let output = run(probe_spec(&["membarrier"])).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "membarrier: refused (query=EPERM global=EPERM)");
}

#[tokio::test]
async fn kill_minus_one_touches_no_host_process() {
    // A host process of the jail's own uid: without the pid namespace, kill(-1, SIGKILL) would reach it. It echoes
    // what it reads, which it can only do while alive and unsignalled.
    let mut sentinel = tokio::process::Command::new("cat")
        .uid(DEFAULT_JAIL_UID)
        .gid(DEFAULT_JAIL_GID)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the sentinel");
    let pid = sentinel.id().expect("the sentinel runs") as i32;
    let mut to = sentinel.stdin.take().expect("piped");
    let mut from = sentinel.stdout.take().expect("piped");
    assert!(
        answers(&mut to, &mut from, "before").await,
        "the sentinel answers before the jail runs"
    );

    let output = run(probe_spec(&["kill-all"])).await;
    assert!(stdout(&output).contains("kill-all: sent"), "{}", stdout(&output));
    // Exit 0 means kill(-1) returned ESRCH: inside the jail it found no process to signal.
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));

    // kill() marks the signal pending before it returns, and a process with SIGKILL pending never runs user code
    // again: an answer after the jail's kill(-1) returned proves the sentinel was not signalled, whatever the timing.
    // SAFETY: signal 0 only checks that the process exists; it is this test's child, not reaped, so the pid is its.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "the sentinel still exists");
    assert!(answers(&mut to, &mut from, "after").await, "the host sentinel survived");
    assert!(sentinel.try_wait().expect("poll the sentinel").is_none());
    drop(to);
    let status = tokio::time::timeout(Duration::from_secs(10), sentinel.wait())
        .await
        .expect("the sentinel ends at the end of its input")
        .expect("wait for the sentinel");
    assert!(
        status.success(),
        "the sentinel ended by itself, not by a signal: {status}"
    );
}

/// Whether `cat` on the other end of `to`/`from` echoes `word` back within 10 s.
async fn answers(to: &mut tokio::process::ChildStdin, from: &mut tokio::process::ChildStdout, word: &str) -> bool {
    let line = format!("{word}\n");
    let exchange = async {
        to.write_all(line.as_bytes()).await?;
        to.flush().await?;
        let mut echoed = vec![0_u8; line.len()];
        from.read_exact(&mut echoed).await?;
        Ok::<_, std::io::Error>(echoed == line.as_bytes())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), exchange).await,
        Ok(Ok(true))
    )
}
