//! Shared by the jail tests: the probe program (built once per run, statically linked) and a sandbox that starts it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use hapnd_executor::{DEFAULT_JAIL_GID, DEFAULT_JAIL_UID, Limits, RunOutput, Sandbox, SandboxConfig, SandboxSpec};

/// A folder the jail user can enter, holding the built probe.
pub struct ProbeDir {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub probe: PathBuf,
    /// The protocol test worker (`tests/probes/worker.c`).
    pub worker: PathBuf,
}

pub fn probe_dir() -> &'static ProbeDir {
    static DIR: OnceLock<ProbeDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("hapnd-probe-")
            .tempdir()
            .expect("create the probe folder");
        let path = dir.path().to_owned();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod the probe folder");
        let probe = path.join("probe");
        let worker = path.join("worker");
        for (binary, source) in [(&probe, "probe.c"), (&worker, "worker.c")] {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes").join(source);
            let status = Command::new("gcc")
                .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
                .arg(binary)
                .arg(&source)
                .status()
                .expect("run gcc");
            assert!(status.success(), "{} must compile", source.display());
        }
        ProbeDir {
            _dir: dir,
            path,
            probe,
            worker,
        }
    })
}

pub fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let mut config = SandboxConfig::new(env!("CARGO_BIN_EXE_hapnd-sandbox-init"));
            config.cgroup_parent = "hapnd-test".into();
            Arc::new(Sandbox::new(config).expect("this host can build jails (the tests run as root)"))
        })
        .clone()
}

/// A spec running the probe with `args`, seeing only the probe's folder.
pub fn probe_spec(args: &[&str]) -> SandboxSpec {
    let dir = probe_dir();
    let mut spec = SandboxSpec::new(&dir.probe);
    spec.args = args.iter().map(|a| (*a).to_owned()).collect();
    spec.read_only = vec![dir.path.clone()];
    spec.limits = Limits::default();
    spec
}

/// A spec running the protocol test worker with `args`.
pub fn worker_spec(args: &[&str]) -> SandboxSpec {
    let mut spec = probe_spec(&[]);
    spec.program = probe_dir().worker.clone();
    spec.args = args.iter().map(|a| (*a).to_owned()).collect();
    spec
}

pub async fn run(spec: SandboxSpec) -> RunOutput {
    sandbox().run(spec, Vec::new()).await.expect("the jail starts")
}

pub fn stdout(output: &RunOutput) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Where a jail assembles its root, as the host would see it if a mount leaked: the jail mounts a tmpfs on `/tmp` of
/// its own namespace, hangs the host's tree at `/tmp/oldroot` and builds the new root at `/tmp/newroot`, which after
/// the first `pivot_root` are `/oldroot` and `/newroot` (`src/init/rootfs.rs`).
const JAIL_ROOT_PREFIXES: [&str; 4] = ["/tmp/oldroot", "/tmp/newroot", "/oldroot", "/newroot"];

/// The mounts of `mountinfo` (a `/proc/<pid>/mountinfo` text) that belong to a jail: anything under the prefixes
/// where a jail builds its root, and any scratch tmpfs of the jail user (mounted `uid=<jail uid>,gid=<jail gid>`).
pub fn jail_mounts(mountinfo: &str) -> Vec<String> {
    let scratch_owner = format!("uid={DEFAULT_JAIL_UID},gid={DEFAULT_JAIL_GID}");
    mountinfo
        .lines()
        .filter(|line| {
            let mount_point = line.split(' ').nth(4).unwrap_or("");
            let under_prefix = JAIL_ROOT_PREFIXES
                .iter()
                .any(|prefix| Path::new(mount_point).starts_with(prefix));
            let (_, fs) = line.split_once(" - ").unwrap_or(("", ""));
            let mut fs = fs.split(' ');
            let scratch = fs.next() == Some("tmpfs") && fs.nth(1).is_some_and(|opts| opts.contains(&scratch_owner));
            under_prefix || scratch
        })
        .map(str::to_owned)
        .collect()
}

/// No jail mount is visible in this test's mount namespace, nor in the host's (that of pid 1).
pub fn assert_no_jail_mount_on_the_host() {
    for file in ["/proc/self/mountinfo", "/proc/1/mountinfo"] {
        let mountinfo = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let leaked = jail_mounts(&mountinfo);
        assert!(leaked.is_empty(), "jail mounts left in {file}: {leaked:#?}");
    }
}
