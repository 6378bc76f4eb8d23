//! Streams and exit statuses pass through, and a finished jail leaves nothing behind.

use hapnd_executor::{Outcome, SandboxError, SpawnError, StdioMode};

use crate::support::{probe_spec, sandbox};

#[tokio::test]
async fn stdin_and_stdout_pass_through_and_the_exit_status_is_the_programs() {
    let output = sandbox()
        .run(probe_spec(&["echo", "42"]), b"hello from the host\n".to_vec())
        .await
        .expect("the jail starts");
    assert_eq!(output.ended.outcome, Outcome::Exited(42));
    assert_eq!(output.stdout, b"hello from the host\n");
}

#[tokio::test]
async fn a_finished_jail_leaves_no_cgroup_process_or_mount() {
    let mut spec = probe_spec(&["fork-bomb"]);
    spec.limits.pids = 16;
    let jail = sandbox()
        .start_async(spec, [StdioMode::Null; 3])
        .await
        .expect("the jail starts");
    let cgroups = jail.cgroup_dirs().to_vec();
    assert!(
        cgroups.iter().all(|dir| dir.exists()),
        "the cgroup exists while the jail runs"
    );
    let ended = jail.wait().await.expect("wait");
    assert_eq!(ended.outcome, Outcome::Exited(0));
    for dir in &cgroups {
        assert!(!dir.exists(), "{} was removed", dir.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains("newroot") && !mounts.contains("oldroot"),
        "no jail mount is visible on the host"
    );
}

#[tokio::test]
async fn a_dropped_jail_is_killed_and_cleaned_up() {
    let jail = sandbox()
        .start_async(probe_spec(&["sleep", "60"]), [StdioMode::Null; 3])
        .await
        .expect("the jail starts");
    let pid = jail.pid().expect("a pid");
    let cgroups = jail.cgroup_dirs().to_vec();
    drop(jail);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the process is gone and reaped"
    );
    for dir in &cgroups {
        assert!(!dir.exists(), "{} was removed", dir.display());
    }
}

#[tokio::test]
async fn a_spec_the_jail_cannot_honour_is_refused_before_anything_starts() {
    let mut spec = probe_spec(&["exit", "0"]);
    spec.read_only.push("/does/not/exist".into());
    let error = sandbox()
        .start_async(spec, [StdioMode::Null; 3])
        .await
        .expect_err("refused");
    assert!(matches!(error, SandboxError::InvalidSpec(_)), "{error}");

    let mut spec = probe_spec(&["exit", "0"]);
    spec.program = "/bin/true".into();
    let error = sandbox()
        .start_async(spec, [StdioMode::Null; 3])
        .await
        .expect_err("refused");
    assert!(matches!(error, SandboxError::InvalidSpec(_)), "{error}");

    // A program that does not exist inside the jail: the init reports the exec step.
    let mut spec = probe_spec(&["exit", "0"]);
    spec.program = crate::support::probe_dir().path.join("missing");
    let error = sandbox()
        .start_async(spec, [StdioMode::Null; 3])
        .await
        .expect_err("refused");
    match error {
        SandboxError::Spawn(SpawnError::Setup(failure)) => assert_eq!(failure.step, "10 exec"),
        other => panic!("expected a setup failure at exec, got {other}"),
    }
}
