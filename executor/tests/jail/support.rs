//! Shared by the jail tests: the probe program (built once per run, statically linked) and a sandbox that starts it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use hapnd_executor::{Limits, RunOutput, Sandbox, SandboxConfig, SandboxSpec};

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
