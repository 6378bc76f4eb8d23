//! Every forbidden action, tried from inside the jail.

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::os::unix::process::CommandExt;
use std::process::Command;

use hapnd_executor::Outcome;

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

#[tokio::test]
async fn kill_minus_one_touches_no_host_process() {
    // A host process of the jail's own uid: without the pid namespace, kill(-1, SIGKILL) would reach it.
    let mut sentinel = Command::new("sleep")
        .arg("30")
        .uid(65534)
        .gid(65534)
        .spawn()
        .expect("start the sentinel");
    let output = run(probe_spec(&["kill-all"])).await;
    assert!(stdout(&output).contains("kill-all: sent"), "{}", stdout(&output));
    let alive = sentinel.try_wait().expect("poll the sentinel").is_none();
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    assert!(alive, "the host sentinel survived");
}
