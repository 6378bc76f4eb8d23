//! Streams and exit statuses pass through, and a finished jail leaves nothing behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hapnd_executor::cgroup::CgroupLayout;
use hapnd_executor::cgroup_owner::CgroupOwner;
use hapnd_executor::jail_user::JailUserError;
use hapnd_executor::{
    DEFAULT_JAIL_GID, DEFAULT_JAIL_UID, Limits, Outcome, Sandbox, SandboxConfig, SandboxError, SpawnError, StdioMode,
};

use crate::support::{assert_no_jail_mount_on_the_host, jail_mounts, probe_spec, sandbox};

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
    assert_no_jail_mount_on_the_host();
}

#[tokio::test]
async fn a_jails_mounts_stay_in_its_own_namespace_while_it_runs_and_after() {
    let jail = sandbox()
        .start_async(probe_spec(&["sleep", "60"]), [StdioMode::Null; 3])
        .await
        .expect("the jail starts");
    let pid = jail.pid().expect("a pid");
    // The positive control: seen from the jail's own namespace, the check finds the jail's mounts (its scratch).
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("the jail's mountinfo");
    assert!(
        !jail_mounts(&inside).is_empty(),
        "the check recognises a jail mount: {inside}"
    );
    let leaked = "612 27 0:99 / /tmp/newroot/opt/worker ro,nosuid,nodev - ext4 /dev/vda rw";
    assert_eq!(
        jail_mounts(leaked),
        [leaked],
        "and a mount where a jail builds its root"
    );
    assert_no_jail_mount_on_the_host();
    drop(jail);
    assert_no_jail_mount_on_the_host();
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
    assert_no_jail_mount_on_the_host();
}

#[test]
fn a_jail_user_that_is_root_or_belongs_to_a_host_account_is_refused() {
    let config = |uid: u32, gid: u32| {
        let mut config = SandboxConfig::new(env!("CARGO_BIN_EXE_hapnd-sandbox-init"));
        config.cgroup_parent = "hapnd-test".into();
        config.uid = uid;
        config.gid = gid;
        config
    };
    let error = Sandbox::new(config(0, DEFAULT_JAIL_GID)).expect_err("root is refused");
    assert!(matches!(error, SandboxError::JailUser(JailUserError::Root)), "{error}");

    // 65534 is `nobody` (and `nogroup` or `nobody`) on the host: shared with other services, so refused.
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    assert!(
        passwd.lines().any(|line| line.starts_with("nobody:x:65534:")),
        "this host has nobody"
    );
    let error = Sandbox::new(config(65534, DEFAULT_JAIL_GID)).expect_err("nobody's uid is refused");
    let shared = |error: &SandboxError| match error {
        SandboxError::JailUser(JailUserError::Shared { kind, id, entry, .. }) => Some((*kind, *id, entry.clone())),
        _ => None,
    };
    assert_eq!(shared(&error), Some(("uid", 65534, "nobody".to_owned())), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("give \"nobody\" another uid, or configure a jail uid"),
        "{message}"
    );
    let error = Sandbox::new(config(DEFAULT_JAIL_UID, 65534)).expect_err("nobody's gid is refused");
    assert!(matches!(shared(&error), Some(("gid", 65534, _))), "{error}");

    // The defaults are held by no host account.
    Sandbox::new(config(DEFAULT_JAIL_UID, DEFAULT_JAIL_GID)).expect("the dedicated ids are accepted");
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

#[tokio::test]
async fn a_kill_that_does_not_take_ends_the_wait_with_an_error_instead_of_hanging() {
    let mut config = SandboxConfig::new(env!("CARGO_BIN_EXE_hapnd-sandbox-init"));
    config.cgroup_parent = "hapnd-test".into();
    config.kill_wait = Duration::from_millis(300);
    let sandbox = Arc::new(Sandbox::new(config).expect("this host can build jails"));
    let jail = sandbox
        .start_async(probe_spec(&["sleep", "60"]), [StdioMode::Null; 3])
        .await
        .expect("the jail starts");
    let pid = jail.pid().expect("a pid");
    let cgroups = jail.cgroup_dirs().to_vec();

    // Without CAP_KILL root may not signal the jail's user. Capabilities belong to a thread: only this test's
    // thread (the one calling kill) loses it, and only from its effective set, so it can take it back.
    caps::drop(None, caps::CapSet::Effective, caps::Capability::CAP_KILL).expect("drop CAP_KILL");
    jail.kill();
    caps::raise(None, caps::CapSet::Effective, caps::Capability::CAP_KILL).expect("raise CAP_KILL again");

    let waited = Instant::now();
    let result = jail.wait().await;
    if sandbox.cgroup_version() == 2 {
        // cgroup.kill needs no signal permission: the jail ended all the same.
        let ended = result.expect("cgroup.kill ended the jail");
        assert_eq!(ended.outcome, Outcome::Signaled(libc::SIGKILL));
        return;
    }
    match result {
        Err(SandboxError::KillTimeout { pid: reported, .. }) => assert_eq!(reported, pid),
        other => panic!("expected a kill timeout, got {other:?}"),
    }
    let took = waited.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "the wait gave up after the kill wait, not never: {took:?}"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the jail really is still running"
    );

    // Once it does end, the background reaper leaves nothing behind. The pid is safe to use: the process is this
    // one's child and not reaped yet, so the pid cannot have been reused.
    // SAFETY: kill with a valid signal on a pid that is still ours.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() || cgroups.iter().any(|dir| dir.exists()) {
        assert!(
            Instant::now() < deadline,
            "the abandoned jail was reaped and its cgroup removed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_new_supervisor_removes_the_cgroups_killed_supervisors_left_and_keeps_those_of_running_ones() {
    let parent = "hapnd-test-left-over";
    let layout = CgroupLayout::detect().expect("cgroups");
    layout.prepare_parent(parent).expect("the parent");
    let hierarchies = match &layout {
        CgroupLayout::V1 { memory, cpu, pids } => vec![memory.join(parent), cpu.join(parent), pids.join(parent)],
        CgroupLayout::V2 { root } => vec![root.join(parent)],
    };
    let me = CgroupOwner::current().expect("/proc");
    // A supervisor that had this pid before (it started earlier) and was killed, one of the older naming scheme,
    // and this very process, which is running.
    let killed = CgroupOwner {
        start_ticks: me.start_ticks - 1,
        ..me
    }
    .jail_name(3);
    let older_scheme = format!("jail-{}-0", me.pid);
    let running = me.jail_name(1_000_000);
    for dir in &hierarchies {
        for name in [&killed, &older_scheme, &running] {
            std::fs::create_dir_all(dir.join(name)).expect("make a cgroup");
        }
    }

    let mut config = SandboxConfig::new(env!("CARGO_BIN_EXE_hapnd-sandbox-init"));
    config.cgroup_parent = parent.into();
    let sandbox = Sandbox::new(config).expect("a sandbox");
    for dir in &hierarchies {
        assert!(!dir.join(&killed).exists(), "{}/{killed} was removed", dir.display());
        assert!(
            !dir.join(&older_scheme).exists(),
            "{}/{older_scheme} was removed",
            dir.display()
        );
        assert!(dir.join(&running).exists(), "{}/{running} was kept", dir.display());
        std::fs::remove_dir(dir.join(&running)).expect("clean up");
    }
    drop(sandbox);
}

#[test]
fn limits_are_set_whatever_limits_the_cgroup_had_before() {
    // On v1 the kernel refuses a memory limit above the memory + swap limit already set (EINVAL): raising both
    // must raise memsw first.
    let parent = "hapnd-test-relimit";
    let layout = CgroupLayout::detect().expect("cgroups");
    layout.prepare_parent(parent).expect("the parent");
    let name = CgroupOwner::current().expect("/proc").jail_name(0);
    let limits = |memory_bytes: u64| Limits {
        memory_bytes,
        ..Limits::default()
    };
    layout.create(parent, &name, &limits(64 << 20)).expect("a small limit");
    let large = layout.create(parent, &name, &limits(512 << 20)).expect("raised");
    let memory_file = if layout.version() == 2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let read = |file: &str| std::fs::read_to_string(large.dirs()[0].join(file)).expect("read a limit");
    assert_eq!(read(memory_file).trim(), (512_u64 << 20).to_string());
    if large.dirs()[0].join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read("memory.memsw.limit_in_bytes").trim(), (512_u64 << 20).to_string());
    }
    let smaller = layout.create(parent, &name, &limits(32 << 20)).expect("lowered");
    assert_eq!(read(memory_file).trim(), (32_u64 << 20).to_string());
    smaller.remove().expect("removed");
}
