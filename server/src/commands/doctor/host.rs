//! The doctor's seam: what it asks of the host, behind a trait so tests can present a host without Landlock or
//! without a cgroup controller. [`RealHost`] asks the real one, trying each feature in a throw-away child process
//! where trying it would change this one.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hapnd_executor::cgroup::CgroupLayout;
use hapnd_executor::{Limits, Sandbox, SandboxSpec, Worker, WorkerConfig};
use hapnd_server::runtime::{DotnetHost, DotnetHostError};

/// How long a C# program may take to say hello: the compiler warms Roslyn (its first, slow compile) before it does.
pub const DOTNET_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    User,
    Pid,
    Net,
    Mount,
    Ipc,
    Uts,
    Cgroup,
}

impl Namespace {
    pub const ALL: [Namespace; 7] = [
        Namespace::User,
        Namespace::Pid,
        Namespace::Net,
        Namespace::Mount,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Cgroup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Net => "network",
            Namespace::Mount => "mount",
            Namespace::Ipc => "IPC",
            Namespace::Uts => "UTS",
            Namespace::Cgroup => "cgroup",
        }
    }

    pub fn check_name(self) -> &'static str {
        match self {
            Namespace::User => "user namespace",
            Namespace::Pid => "pid namespace",
            Namespace::Net => "network namespace",
            Namespace::Mount => "mount namespace",
            Namespace::Ipc => "IPC namespace",
            Namespace::Uts => "UTS namespace",
            Namespace::Cgroup => "cgroup namespace",
        }
    }

    pub fn fix(self) -> &'static str {
        match self {
            Namespace::User => {
                "nothing to do for the jail; allow user namespaces (sysctl user.max_user_namespaces > 0) only if \
                 other tools on this host need them"
            }
            _ => "use a kernel with namespaces enabled and run hapnd as root, outside a container that forbids them",
        }
    }

    fn flag(self) -> libc::c_int {
        match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupsFound {
    /// "v1", "v2" or "hybrid (v1 controllers, v2 without)".
    pub description: String,
    /// Why jails cannot use them, when they cannot.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotnetVersions {
    pub runtimes: Vec<String>,
    pub sdks: Vec<String>,
}

/// A program of `dotnet-host` the doctor starts in the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotnetProgram {
    Compiler,
    /// A worker verifying artifacts with `public_key` (a SEC1 point).
    Worker {
        public_key: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirInfo {
    pub free_bytes: u64,
    pub filesystem: String,
}

pub trait Host {
    fn euid(&self) -> u32;
    /// Names like `CAP_SYS_ADMIN`.
    fn effective_capabilities(&self) -> Vec<String>;
    fn cgroups(&self) -> Result<CgroupsFound, String>;
    fn namespace(&self, namespace: Namespace) -> Result<(), String>;
    fn pivot_root(&self) -> Result<(), String>;
    /// 0 when Landlock is unavailable.
    fn landlock_abi(&self) -> i32;
    fn seccomp(&self) -> Result<(), String>;
    fn dotnet(&self) -> Result<DotnetVersions, String>;
    /// Starts a trivial worker in the jail and times its first answer.
    fn jailed_worker(&self) -> Result<Duration, String>;
    /// Whether the compiler and worker built into `artifacts` (`dotnet build --artifacts-path`) are there, with a
    /// runtime, all where the jail user can reach them.
    fn dotnet_programs(&self, artifacts: &Path) -> Result<(), DotnetHostError>;
    /// Starts one of those programs in the jail and times it until its hello.
    fn start_dotnet_program(&self, artifacts: &Path, program: &DotnetProgram) -> Result<Duration, String>;
    /// The public key of the signing key at `path`, when there is one that loads.
    fn signing_public_key(&self, path: &Path) -> Option<Vec<u8>>;
    fn data_dir(&self, dir: &Path) -> Result<DataDirInfo, String>;
    fn sqlite_version(&self) -> String;
    /// The signing key file's permission bits, `None` when it does not exist yet.
    fn signing_key_mode(&self, path: &Path) -> Result<Option<u32>, String>;
}

/// The host this process runs on.
pub struct RealHost {
    /// This binary: the jail's init and the echo worker.
    pub exe: PathBuf,
}

impl Host for RealHost {
    fn euid(&self) -> u32 {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
    }

    fn effective_capabilities(&self) -> Vec<String> {
        caps::read(None, caps::CapSet::Effective)
            .map(|set| set.iter().map(|cap| cap.to_string()).collect())
            .unwrap_or_default()
    }

    fn cgroups(&self) -> Result<CgroupsFound, String> {
        let layout = CgroupLayout::detect().map_err(|e| e.to_string())?;
        let description = match &layout {
            CgroupLayout::V2 { .. } => "cgroup v2".to_owned(),
            CgroupLayout::V1 { .. } if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() => {
                "hybrid (v1 controllers, v2 without)".to_owned()
            }
            CgroupLayout::V1 { .. } => "cgroup v1".to_owned(),
        };
        // Usable means: a jail's cgroup can be made with every limit set, and removed.
        let problem = layout
            .prepare_parent("hapnd")
            .and_then(|()| {
                let name = format!("doctor-{}", std::process::id());
                layout.create("hapnd", &name, &Limits::default())?.remove()
            })
            .err()
            .map(|e| e.to_string());
        Ok(CgroupsFound { description, problem })
    }

    fn namespace(&self, namespace: Namespace) -> Result<(), String> {
        let flag = namespace.flag();
        // SAFETY: the closure runs in the forked child before exec and only calls unshare, which is
        // async-signal-safe.
        in_child(&self.exe, move || unsafe { check(libc::unshare(flag)) })
    }

    fn pivot_root(&self) -> Result<(), String> {
        let paths = PivotPaths::new()?;
        // SAFETY: the closure runs in the forked child before exec; it only makes system calls
        // (async-signal-safe) on strings prepared before the fork.
        in_child(&self.exe, move || unsafe { paths.pivot() })
    }

    fn landlock_abi(&self) -> i32 {
        // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute and size 0 only returns a number.
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0_usize,
                1_u32,
            )
        };
        i32::try_from(abi).unwrap_or(0).max(0)
    }

    fn seccomp(&self) -> Result<(), String> {
        let allow = [libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        }];
        let program = libc::sock_fprog {
            len: 1,
            filter: allow.as_ptr().cast_mut(),
        };
        let program_address = &program as *const libc::sock_fprog as usize;
        // SAFETY: the closure runs in the forked child before exec; prctl and seccomp are system calls on memory
        // prepared before the fork (the child has its own copy of it).
        in_child(&self.exe, move || unsafe {
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            let rc = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                program_address as *const libc::sock_fprog,
            );
            check(rc as libc::c_int)
        })
    }

    fn dotnet(&self) -> Result<DotnetVersions, String> {
        let list = |what: &str| -> Result<Vec<String>, String> {
            let output = Command::new("dotnet")
                .arg(what)
                .env("DOTNET_CLI_TELEMETRY_OPTOUT", "1")
                .env("DOTNET_NOLOGO", "1")
                .output()
                .map_err(|e| format!("run `dotnet {what}`: {e}"))?;
            Ok(String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| {
                    let mut words = line.split_whitespace();
                    match what {
                        "--list-runtimes" => (words.next() == Some("Microsoft.NETCore.App"))
                            .then(|| words.next().map(str::to_owned))
                            .flatten(),
                        _ => words.next().map(str::to_owned),
                    }
                })
                .collect())
        };
        Ok(DotnetVersions {
            runtimes: list("--list-runtimes")?,
            sdks: list("--list-sdks").unwrap_or_default(),
        })
    }

    fn jailed_worker(&self) -> Result<Duration, String> {
        in_sandbox(|sandbox| async move {
            let started = Instant::now();
            let mut worker = Worker::start(&sandbox, echo_worker_spec(&self.exe), WorkerConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let body =
                serde_json::value::RawValue::from_string(r#"{"doctor":true}"#.into()).map_err(|e| e.to_string())?;
            let answer = worker.call(&body).await.map_err(|e| e.to_string())?;
            let took = started.elapsed();
            worker.shutdown().await;
            match answer {
                Ok(echoed) if echoed.get() == body.get() => Ok(took),
                Ok(other) => Err(format!("the worker answered {} instead of the request", other.get())),
                Err(error) => Err(format!("the worker reported {error:?}")),
            }
        })
    }

    fn dotnet_programs(&self, artifacts: &Path) -> Result<(), DotnetHostError> {
        DotnetHost::from_build_artifacts(artifacts).map(drop)
    }

    fn start_dotnet_program(&self, artifacts: &Path, program: &DotnetProgram) -> Result<Duration, String> {
        let host = DotnetHost::from_build_artifacts(artifacts).map_err(|e| e.to_string())?;
        let spec = match program {
            DotnetProgram::Compiler => host.compiler_spec(),
            DotnetProgram::Worker { public_key } => host.worker_spec(public_key),
        };
        let config = WorkerConfig {
            handshake_timeout: DOTNET_HANDSHAKE_TIMEOUT,
            ..WorkerConfig::default()
        };
        in_sandbox(|sandbox| async move {
            let started = Instant::now();
            let worker = Worker::start(&sandbox, spec, config).await.map_err(|e| e.to_string())?;
            let took = started.elapsed();
            worker.shutdown().await;
            Ok(took)
        })
    }

    fn signing_public_key(&self, path: &Path) -> Option<Vec<u8>> {
        hapnd_server::signing_key::load_or_create(path, false)
            .ok()
            .map(|signer| signer.public_key().to_bytes().to_vec())
    }

    fn data_dir(&self, dir: &Path) -> Result<DataDirInfo, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create: {e}"))?;
        let probe = dir.join(format!(".doctor-{}", std::process::id()));
        std::fs::write(&probe, b"hapnd doctor").map_err(|e| format!("not writable: {e}"))?;
        let _ = std::fs::remove_file(&probe);
        let path = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: zeroed statfs is a valid out-value; `path` is NUL-terminated.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers for the duration of the call.
        if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(format!("statfs: {}", std::io::Error::last_os_error()));
        }
        Ok(DataDirInfo {
            free_bytes: (stat.f_bavail as u64).saturating_mul(stat.f_bsize as u64),
            filesystem: filesystem_name(stat.f_type as i64),
        })
    }

    fn sqlite_version(&self) -> String {
        rusqlite::version().to_owned()
    }

    fn signing_key_mode(&self, path: &Path) -> Result<Option<u32>, String> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(metadata) => Ok(Some(metadata.permissions().mode() & 0o777)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The echo worker (this binary under another name) with what a dynamically linked binary needs to start.
pub fn echo_worker_spec(exe: &Path) -> SandboxSpec {
    let mut spec = SandboxSpec::new(exe);
    spec.args = Vec::new();
    spec.read_only = ["/usr/lib", "/lib", "/lib64"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    if let Some(dir) = exe.parent() {
        spec.read_only.push(dir.to_owned());
    }
    spec.argv0 = Some(hapnd_executor::worker::echo::ECHO_WORKER_NAME.to_owned());
    spec
}

/// Runs `job` on a one-thread runtime with this binary's sandbox.
fn in_sandbox<F, Fut>(job: F) -> Result<Duration, String>
where
    F: FnOnce(Arc<Sandbox>) -> Fut,
    Fut: Future<Output = Result<Duration, String>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sandbox = super::super::sandbox::host_sandbox().map_err(|e| format!("{e:#}"))?;
        job(sandbox).await
    })
}

fn filesystem_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x6969 => "nfs".into(),
        0xFF53_4D42 => "cifs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        other => format!("filesystem {other:#x}"),
    }
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs `before_exec` in a forked child that then execs `hapnd --version`: the check passed when the child ran.
fn in_child(
    exe: &Path,
    before_exec: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Result<(), String> {
    let mut command = Command::new(exe);
    command
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the callers' closures only make async-signal-safe system calls.
    unsafe { command.pre_exec(before_exec) };
    let status = command.status().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the test process ended with {status}"))
    }
}

/// The strings a pivot_root check needs, made before the fork.
struct PivotPaths {
    root: CString,
    tmpfs: CString,
    base: CString,
    old: CString,
    /// The old root once the new one is in place.
    old_after: CString,
}

impl PivotPaths {
    fn new() -> Result<Self, String> {
        let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
        Ok(PivotPaths {
            root: c("/")?,
            tmpfs: c("tmpfs")?,
            base: c("/tmp")?,
            old: c("/tmp/old")?,
            old_after: c("/old")?,
        })
    }

    /// In the child: a private mount namespace, a tmpfs root, `pivot_root` onto it with the old root at `/old`; then
    /// back into the old root with `chroot`, so the binary can be exec'd to report success.
    ///
    /// # Safety
    /// Only in a forked child before exec.
    unsafe fn pivot(&self) -> std::io::Result<()> {
        // SAFETY: system calls on NUL-terminated strings owned by `self`.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                self.root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                self.tmpfs.as_ptr(),
                self.base.as_ptr(),
                self.tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            ))?;
            check(libc::mkdir(self.old.as_ptr(), 0o700))?;
            check(libc::syscall(libc::SYS_pivot_root, self.base.as_ptr(), self.old.as_ptr()) as libc::c_int)?;
            check(libc::chroot(self.old_after.as_ptr()))?;
            check(libc::chdir(self.root.as_ptr()))
        }
    }
}
