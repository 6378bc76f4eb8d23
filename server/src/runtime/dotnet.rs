//! How the .NET programs are jailed: where the runtime and the built `dotnet-host` programs are, and the
//! [`SandboxSpec`]s of the compiler and the worker. The jail sees the runtime, the C libraries it links, and the
//! one program's folder, read-only; nothing else of the host.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapnd_executor::SandboxSpec;

/// Roslyn holds the syntax trees, the bound compilation and the references' metadata.
pub const COMPILER_MEMORY_BYTES: u64 = 768 * 1024 * 1024;
/// One compile, gates included; Roslyn's first compile in a process is the slow one and happens before the hello.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a worker's JIT tiers up. A worker runs a batch's loop over thousands of events from its first request, and a
/// replay is a few dozen requests: loops are compiled optimized at once instead of starting in the quick tier,
/// and methods called often move up as soon as they are counted, not after the runtime's 100 ms of quiet (which
/// a busy worker never has). Measured on a 200,000-event projection replay: the worker's time per event fell from
/// 5.7 to 2.9 µs.
const WORKER_JIT: &[(&str, &str)] = &[
    ("DOTNET_TC_QuickJitForLoops", "0"),
    ("DOTNET_TC_CallCountingDelayMs", "0"),
];

/// The workers' first GC generation (see `DOTNET_GCgen0size`).
const GEN0_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DotnetHostError {
    #[error("the .NET runtime was not found at {0} (set DOTNET_ROOT or install the .NET 10 runtime)")]
    NoRuntime(PathBuf),
    #[error(
        "{program} was not found in {dir} (build dotnet-host first: dotnet build dotnet-host/Hapnd.slnx -c Release)"
    )]
    NoProgram { program: &'static str, dir: PathBuf },
    #[error("the jail user cannot reach {0}: every folder above it must be searchable by others (chmod o+x)")]
    NotReachable(PathBuf),
}

/// The runtime and the two programs, as the jail will see them.
#[derive(Debug, Clone)]
pub struct DotnetHost {
    pub dotnet_root: PathBuf,
    pub compiler_dir: PathBuf,
    pub worker_dir: PathBuf,
}

impl DotnetHost {
    /// The programs built by `dotnet build dotnet-host/Hapnd.slnx -c Release --artifacts-path DIR`, in `DIR`.
    pub fn from_build_artifacts(artifacts: &Path) -> Result<Self, DotnetHostError> {
        // The jail binds paths as given: they must be absolute and plain.
        let artifacts = std::fs::canonicalize(artifacts).map_err(|_| DotnetHostError::NoProgram {
            program: "Hapnd.Compiler.dll",
            dir: artifacts.to_owned(),
        })?;
        let host = DotnetHost {
            dotnet_root: dotnet_root(),
            compiler_dir: artifacts.join("bin/Hapnd.Compiler/release"),
            worker_dir: artifacts.join("bin/Hapnd.Worker/release"),
        };
        host.check()?;
        Ok(host)
    }

    fn check(&self) -> Result<(), DotnetHostError> {
        if !self.dotnet_root.join("dotnet").is_file() {
            return Err(DotnetHostError::NoRuntime(self.dotnet_root.clone()));
        }
        for (program, dir) in [
            ("Hapnd.Compiler.dll", &self.compiler_dir),
            ("Hapnd.Worker.dll", &self.worker_dir),
        ] {
            if !dir.join(program).is_file() {
                return Err(DotnetHostError::NoProgram {
                    program,
                    dir: dir.clone(),
                });
            }
            reachable_by_others(dir)?;
        }
        reachable_by_others(&self.dotnet_root)
    }

    /// The compiler: one long-lived process compiling uploads.
    pub fn compiler_spec(&self) -> SandboxSpec {
        let mut spec = self.spec(&self.compiler_dir, "Hapnd.Compiler.dll", COMPILER_MEMORY_BYTES);
        spec.limits.request_timeout = COMPILE_TIMEOUT;
        spec
    }

    /// A worker that verifies artifacts with `public_key` (the SEC1 point) before it loads them.
    pub fn worker_spec(&self, public_key: &[u8]) -> SandboxSpec {
        let mut spec = self.spec(
            &self.worker_dir,
            "Hapnd.Worker.dll",
            hapnd_executor::Limits::default().memory_bytes,
        );
        spec.args.extend(["--public-key".to_owned(), hex::encode(public_key)]);
        spec.env.extend(
            WORKER_JIT
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        spec
    }

    fn spec(&self, program_dir: &Path, program: &str, memory_bytes: u64) -> SandboxSpec {
        let mut spec = SandboxSpec::new(self.dotnet_root.join("dotnet"));
        spec.args = vec![program_dir.join(program).to_string_lossy().into_owned()];
        spec.read_only = vec![
            self.dotnet_root.clone(),
            PathBuf::from("/usr/lib"),
            PathBuf::from("/lib"),
            PathBuf::from("/lib64"),
            program_dir.to_owned(),
        ];
        spec.read_only.retain(|path| path.exists());
        spec.limits.memory_bytes = memory_bytes;
        spec.env = vec![
            ("HOME".into(), "/tmp".into()),
            ("DOTNET_ROOT".into(), self.dotnet_root.to_string_lossy().into_owned()),
            ("DOTNET_NOLOGO".into(), "1".into()),
            ("DOTNET_CLI_TELEMETRY_OPTOUT".into(), "1".into()),
            // No diagnostics IPC socket in a jail nobody attaches to.
            ("DOTNET_EnableDiagnostics".into(), "0".into()),
            // Without /sys the runtime cannot see the cgroup's memory limit: a managed heap of 3/4 of it leaves room
            // for the runtime's own memory (code, stacks, the GC's bookkeeping), so a greedy upload meets an
            // OutOfMemoryException before the kernel's killer.
            ("DOTNET_GCHeapHardLimit".into(), format!("{:x}", memory_bytes / 4 * 3)),
            // A larger first generation: a batch allocates its events and states in one go, and each gen0
            // collection in the middle of it costs more than the memory (the jail's limit leaves room).
            ("DOTNET_GCgen0size".into(), format!("{:x}", GEN0_BYTES)),
            // One GC heap and no server GC threads: the jail has one CPU.
            ("DOTNET_gcServer".into(), "0".into()),
            ("DOTNET_GCHeapCount".into(), "1".into()),
        ];
        spec
    }
}

/// `DOTNET_ROOT`, else the folder of the `dotnet` on `PATH`, else `/usr/share/dotnet`.
fn dotnet_root() -> PathBuf {
    if let Some(root) = std::env::var_os("DOTNET_ROOT") {
        return PathBuf::from(root);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("dotnet"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .and_then(|dotnet| std::fs::canonicalize(dotnet).ok())
        .and_then(|dotnet| dotnet.parent().map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from("/usr/share/dotnet"))
}

/// The jail user (not root, not the owner) must be able to walk down to `dir`.
fn reachable_by_others(dir: &Path) -> Result<(), DotnetHostError> {
    for ancestor in dir.ancestors() {
        let searchable = std::fs::metadata(ancestor).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
        if !searchable {
            return Err(DotnetHostError::NotReachable(ancestor.to_owned()));
        }
    }
    Ok(())
}
