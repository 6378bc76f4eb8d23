//! What `hapnd doctor` concludes from what it found: one [`Check`] per item, each ok, warn or fail with a one-line
//! fix. Pure: the findings come from a [`Host`], so a missing feature can be tested without a host that lacks it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hapnd_policy::signing::ArtifactSigner;
use hapnd_server::runtime::DotnetHostError;

use super::host::{DataDirInfo, DotnetProgram, Host, Namespace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The capabilities the supervisor uses to build jails, and what for.
pub const NEEDED_CAPABILITIES: [(&str, &str); 6] = [
    ("CAP_SYS_ADMIN", "namespaces, mounts and pivot_root"),
    ("CAP_SETUID", "switching to the jail user"),
    ("CAP_SETGID", "switching to the jail group"),
    ("CAP_SETPCAP", "emptying the jail's bounding set"),
    (
        "CAP_DAC_OVERRIDE",
        "writing cgroup files and binding paths the jail reads",
    ),
    (
        "CAP_KILL",
        "killing jails at their deadline: they run under another uid",
    ),
];

/// Free space below which the data dir is a warning.
const LOW_SPACE_BYTES: u64 = 1 << 30;

/// Where the doctor looks.
#[derive(Debug, Clone)]
pub struct Places {
    pub data_dir: PathBuf,
    pub signing_key: PathBuf,
    /// The `--artifacts-path` of a `dotnet-host` build.
    pub dotnet_host: PathBuf,
    /// Whether the operator named `dotnet_host` (else it is the default next to the binary).
    pub dotnet_host_given: bool,
}

pub fn run_checks(host: &dyn Host, places: &Places) -> Vec<Check> {
    let mut checks = vec![privileges(host)];
    checks.push(cgroups(host));
    checks.extend(namespaces(host));
    checks.push(pivot_root(host));
    checks.push(landlock(host));
    checks.push(seccomp(host));
    checks.push(dotnet(host));
    checks.push(jailed_worker(host));
    checks.extend(dotnet_programs(host, places));
    checks.push(data_dir_check(host.data_dir(&places.data_dir), &places.data_dir));
    checks.push(Check::ok("sqlite", format!("SQLite {}", host.sqlite_version())));
    checks.push(signing_key_check(
        host.signing_key_mode(&places.signing_key),
        &places.signing_key,
    ));
    checks
}

/// The secret of the worker check's key when the data dir has none yet: any valid key will do, since the worker only
/// needs a P-256 point to start (it is asked to load nothing).
const STAND_IN_SECRET: [u8; 32] = [1; 32];

/// Three checks: the built compiler and worker are there, and each starts in the jail and says hello.
fn dotnet_programs(host: &dyn Host, places: &Places) -> Vec<Check> {
    let dir = &places.dotnet_host;
    let shown = dir.display();
    let build = |dir: &str| {
        format!("dotnet build dotnet-host/Hapnd.slnx -c Release --artifacts-path {dir}, then pass --dotnet-host {dir}")
    };
    let present = match host.dotnet_programs(dir) {
        Ok(()) => Check::ok(
            "dotnet programs",
            format!("Hapnd.Compiler.dll and Hapnd.Worker.dll built in {shown}"),
        ),
        Err(DotnetHostError::NoProgram { .. }) if !places.dotnet_host_given => Check::fail(
            "dotnet programs",
            format!("not found: no --dotnet-host given and no build in {shown} (next to hapnd)"),
            build("DIR"),
        ),
        Err(DotnetHostError::NoProgram { program, dir: in_dir }) => Check::fail(
            "dotnet programs",
            format!("{program} not found in {}", in_dir.display()),
            build(&shown.to_string()),
        ),
        Err(DotnetHostError::NoRuntime(root)) => Check::fail(
            "dotnet programs",
            format!("the .NET runtime was not found at {} to run them", root.display()),
            "install the .NET 10 runtime, or set DOTNET_ROOT to where it is",
        ),
        Err(DotnetHostError::NotReachable(folder)) => Check::fail(
            "dotnet programs",
            format!("the jail user cannot reach {}", folder.display()),
            format!("chmod o+x {}", folder.display()),
        ),
    };
    if present.status == Status::Fail {
        let skipped = |name| {
            Check::fail(
                name,
                "not started: the dotnet programs are missing",
                "fix the dotnet programs check above",
            )
        };
        return vec![present, skipped("C# compiler"), skipped("C# worker")];
    }

    let compiler = match host.start_dotnet_program(dir, &DotnetProgram::Compiler) {
        Ok(took) => Check::ok(
            "C# compiler",
            format!("started in the jail, warmed Roslyn and said hello in {}", show(took)),
        ),
        Err(error) => Check::fail(
            "C# compiler",
            format!("the jailed compiler did not say hello: {}", one_line(&error)),
            "rebuild dotnet-host from this version of hapnd; if the jailed worker check fails too, fix that first",
        ),
    };
    let (public_key, key_used) = match host.signing_public_key(&places.signing_key) {
        Some(key) => (key, "the data dir's signing key"),
        None => (
            ArtifactSigner::from_secret_bytes(&STAND_IN_SECRET)
                .expect("a fixed valid P-256 secret")
                .public_key()
                .to_bytes()
                .to_vec(),
            "a stand-in key (no signing key yet)",
        ),
    };
    let worker = match host.start_dotnet_program(dir, &DotnetProgram::Worker { public_key }) {
        Ok(took) => Check::ok(
            "C# worker",
            format!("started in the jail with {key_used} and said hello in {}", show(took)),
        ),
        Err(error) => Check::fail(
            "C# worker",
            format!("the jailed worker did not say hello: {}", one_line(&error)),
            "rebuild dotnet-host from this version of hapnd; if the jailed worker check fails too, fix that first",
        ),
    };
    vec![present, compiler, worker]
}

/// An error with the program's standard error in it, on one line and not too long for a terminal.
fn one_line(error: &str) -> String {
    const MAX_CHARS: usize = 600;
    let joined = error
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    match joined.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

fn signing_key_check(mode: Result<Option<u32>, String>, path: &Path) -> Check {
    let shown = path.display();
    match mode {
        Ok(Some(0o600)) | Ok(Some(0o400)) => {
            Check::ok("signing key", format!("{shown}: present, readable by its owner only"))
        }
        Ok(Some(mode)) => Check::fail(
            "signing key",
            format!("{shown} has mode {mode:o}: others could sign code the workers would run"),
            format!("chmod 600 {shown}"),
        ),
        Ok(None) => Check::ok(
            "signing key",
            format!("{shown}: not there yet; `hapnd serve` creates it (mode 0600)"),
        ),
        Err(error) => Check::fail(
            "signing key",
            format!("{shown}: {error}"),
            "make the key file readable by the user hapnd runs as, and by no one else",
        ),
    }
}

fn privileges(host: &dyn Host) -> Check {
    let euid = host.euid();
    let held = host.effective_capabilities();
    let missing: Vec<String> = NEEDED_CAPABILITIES
        .iter()
        .filter(|(cap, _)| !held.iter().any(|h| h == cap))
        .map(|(cap, why)| format!("{cap} ({why})"))
        .collect();
    match (euid, missing.is_empty()) {
        (0, true) => Check::ok("privileges", "running as root with the capabilities the jail needs"),
        (0, false) => Check::fail(
            "privileges",
            format!("root, but without {}", missing.join(", ")),
            "run hapnd outside a capability-restricted container, or grant the capabilities named",
        ),
        (uid, _) => Check::fail(
            "privileges",
            format!("running as uid {uid}; the jail needs root (it creates namespaces, cgroups and mounts)"),
            "run hapnd as root (for example from a systemd unit); non-root operation is not supported yet",
        ),
    }
}

fn cgroups(host: &dyn Host) -> Check {
    let euid = host.euid();
    match host.cgroups() {
        Ok(found) => match found.problem {
            None => Check::ok(
                "cgroups",
                format!("{}; memory, cpu and pids usable for jails", found.description),
            ),
            // Not root: the controllers may well be there, but only a subtree delegated to this user is writable.
            Some(problem) if euid != 0 => Check::fail(
                "cgroups",
                format!(
                    "{}; {problem}; as uid {euid}, hapnd can only use a cgroup subtree delegated to it",
                    found.description
                ),
                "delegate a cgroup subtree to hapnd's user: owned by it, with memory, cpu and pids in its \
                 cgroup.subtree_control (for example run hapnd from a systemd unit with Delegate=yes), or run \
                 hapnd as root",
            ),
            Some(problem) => Check::fail(
                "cgroups",
                format!("{}; {problem}", found.description),
                "enable the memory, cpu and pids controllers (cgroup_enable=memory on the kernel command line, or \
                 delegate them to hapnd's cgroup)",
            ),
        },
        Err(problem) => Check::fail(
            "cgroups",
            problem,
            "mount cgroup2 (or the v1 memory, cpu and pids hierarchies) at /sys/fs/cgroup",
        ),
    }
}

fn namespaces(host: &dyn Host) -> Vec<Check> {
    Namespace::ALL
        .iter()
        .map(|ns| match host.namespace(*ns) {
            Ok(()) => Check::ok(ns.check_name(), format!("{} namespaces can be created", ns.name())),
            // The jail runs under a real, dedicated uid and creates no user namespace (JAIL.md step 3): without
            // them it is just as strong, so this is worth knowing but not a failure.
            Err(error) if *ns == Namespace::User => Check::warn(
                ns.check_name(),
                format!("cannot create a user namespace: {error}; the jail does not use them"),
                ns.fix(),
            ),
            Err(error) => Check::fail(
                ns.check_name(),
                format!("cannot create a {} namespace: {error}", ns.name()),
                ns.fix(),
            ),
        })
        .collect()
}

fn pivot_root(host: &dyn Host) -> Check {
    match host.pivot_root() {
        Ok(()) => Check::ok("pivot_root", "works in a fresh mount namespace"),
        Err(error) => Check::fail(
            "pivot_root",
            format!("pivot_root in a fresh mount namespace failed: {error}"),
            "run hapnd on a host filesystem (not from an initramfs root), as root",
        ),
    }
}

fn landlock(host: &dyn Host) -> Check {
    match host.landlock_abi() {
        0 => Check::fail(
            "landlock",
            "Landlock is not available: the jail fails closed and no worker can start",
            "use Linux 5.13 or later with Landlock enabled (CONFIG_SECURITY_LANDLOCK=y and `landlock` in the lsm= \
             boot parameter)",
        ),
        abi if abi < 4 => Check::warn(
            "landlock",
            format!("Landlock ABI {abi}: files are restricted, but TCP and scoping rules need ABI 4 and 6"),
            "use Linux 6.12 or later for the full set of Landlock restrictions",
        ),
        abi => Check::ok("landlock", format!("Landlock ABI {abi}")),
    }
}

fn seccomp(host: &dyn Host) -> Check {
    match host.seccomp() {
        Ok(()) => Check::ok("seccomp", "seccomp filters can be installed"),
        Err(error) => Check::fail(
            "seccomp",
            format!("cannot install a seccomp filter: {error}"),
            "use a kernel built with CONFIG_SECCOMP_FILTER=y",
        ),
    }
}

fn dotnet(host: &dyn Host) -> Check {
    match host.dotnet() {
        Ok(versions) if versions.runtimes.is_empty() => Check::fail(
            "dotnet",
            "the .NET host is installed but no Microsoft.NETCore.App runtime",
            "install the .NET 10 runtime (or SDK)",
        ),
        Ok(versions) => {
            let sdks = if versions.sdks.is_empty() {
                "no SDK".to_owned()
            } else {
                format!("SDK {}", versions.sdks.join(", "))
            };
            Check::ok("dotnet", format!("runtime {}; {sdks}", versions.runtimes.join(", ")))
        }
        Err(error) => Check::fail(
            "dotnet",
            format!("no .NET runtime: {error}"),
            "install the .NET 10 SDK; reducers and projections run on it",
        ),
    }
}

fn jailed_worker(host: &dyn Host) -> Check {
    match host.jailed_worker() {
        Ok(took) => Check::ok(
            "jailed worker",
            format!("a trivial worker started in the jail and answered in {}", show(took)),
        ),
        Err(error) => Check::fail(
            "jailed worker",
            format!("a trivial jailed worker did not answer: {error}"),
            "fix the failures above; `hapnd sandbox exec -- /bin/true` shows the jail's own error",
        ),
    }
}

fn data_dir_check(info: Result<DataDirInfo, String>, dir: &Path) -> Check {
    let shown = dir.display();
    match info {
        Err(error) => Check::fail(
            "data dir",
            format!("{shown}: {error}"),
            "create the data dir and make it writable by the user hapnd runs as",
        ),
        Ok(info) if info.filesystem == "nfs" || info.filesystem == "cifs" => Check::warn(
            "data dir",
            format!(
                "{shown} is on {}: SQLite's locking and WAL need a local filesystem",
                info.filesystem
            ),
            "put the data dir on a local disk (ext4, xfs)",
        ),
        Ok(info) if info.free_bytes < LOW_SPACE_BYTES => Check::warn(
            "data dir",
            format!(
                "{shown}: only {} MiB free on {}",
                info.free_bytes >> 20,
                info.filesystem
            ),
            "free space or move the data dir; appends fail when the disk is full",
        ),
        Ok(info) => Check::ok(
            "data dir",
            format!(
                "{shown}: writable, {} GiB free on {}",
                info.free_bytes >> 30,
                info.filesystem
            ),
        ),
    }
}

fn show(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use hapnd_policy::signing::ArtifactPublicKey;

    use super::*;
    use crate::commands::doctor::host::{CgroupsFound, DotnetVersions};

    /// A host with every feature, unless told otherwise.
    struct FakeHost {
        landlock_abi: i32,
        cgroups: Result<CgroupsFound, String>,
        euid: u32,
        key_mode: Option<u32>,
        capabilities: Vec<String>,
        /// The namespace kind that cannot be created, if any.
        failing_namespace: Option<Namespace>,
        dotnet_programs: fn() -> Result<(), DotnetHostError>,
        compiler: Result<Duration, String>,
        worker: Result<Duration, String>,
        public_key: Option<Vec<u8>>,
        /// The C# programs started, in order.
        started: RefCell<Vec<DotnetProgram>>,
    }

    impl Default for FakeHost {
        fn default() -> Self {
            FakeHost {
                landlock_abi: 7,
                cgroups: Ok(CgroupsFound {
                    description: "cgroup v2".into(),
                    problem: None,
                }),
                euid: 0,
                key_mode: Some(0o600),
                capabilities: NEEDED_CAPABILITIES.iter().map(|(cap, _)| (*cap).to_owned()).collect(),
                failing_namespace: None,
                dotnet_programs: || Ok(()),
                compiler: Ok(Duration::from_millis(1840)),
                worker: Ok(Duration::from_millis(95)),
                public_key: Some(data_dir_key()),
                started: RefCell::default(),
            }
        }
    }

    fn data_dir_key() -> Vec<u8> {
        ArtifactSigner::from_secret_bytes(&[0x42; 32])
            .expect("a valid test key")
            .public_key()
            .to_bytes()
            .to_vec()
    }

    impl Host for FakeHost {
        fn euid(&self) -> u32 {
            self.euid
        }
        fn effective_capabilities(&self) -> Vec<String> {
            self.capabilities.clone()
        }
        fn cgroups(&self) -> Result<CgroupsFound, String> {
            self.cgroups.clone()
        }
        fn namespace(&self, namespace: Namespace) -> Result<(), String> {
            match self.failing_namespace {
                Some(failing) if failing == namespace => Err("Operation not permitted (os error 1)".into()),
                _ => Ok(()),
            }
        }
        fn pivot_root(&self) -> Result<(), String> {
            Ok(())
        }
        fn landlock_abi(&self) -> i32 {
            self.landlock_abi
        }
        fn seccomp(&self) -> Result<(), String> {
            Ok(())
        }
        fn dotnet(&self) -> Result<DotnetVersions, String> {
            Ok(DotnetVersions {
                runtimes: vec!["10.0.12".into()],
                sdks: vec!["10.0.401".into()],
            })
        }
        fn jailed_worker(&self) -> Result<Duration, String> {
            Ok(Duration::from_millis(20))
        }
        fn dotnet_programs(&self, _: &Path) -> Result<(), DotnetHostError> {
            (self.dotnet_programs)()
        }
        fn start_dotnet_program(&self, _: &Path, program: &DotnetProgram) -> Result<Duration, String> {
            self.started.borrow_mut().push(program.clone());
            match program {
                DotnetProgram::Compiler => self.compiler.clone(),
                DotnetProgram::Worker { .. } => self.worker.clone(),
            }
        }
        fn signing_public_key(&self, _: &Path) -> Option<Vec<u8>> {
            self.public_key.clone()
        }
        fn data_dir(&self, _: &Path) -> Result<DataDirInfo, String> {
            Ok(DataDirInfo {
                free_bytes: 100 << 30,
                filesystem: "ext4".into(),
            })
        }
        fn sqlite_version(&self) -> String {
            "3.54.1".into()
        }
        fn signing_key_mode(&self, _: &Path) -> Result<Option<u32>, String> {
            Ok(self.key_mode)
        }
    }

    fn places(dotnet_host_given: bool) -> Places {
        Places {
            data_dir: PathBuf::from("/data"),
            signing_key: PathBuf::from("/data/keys/k"),
            dotnet_host: PathBuf::from("/opt/hapnd/dotnet-host"),
            dotnet_host_given,
        }
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check"))
    }

    #[test]
    fn a_complete_host_passes_every_check() {
        let checks = run(&FakeHost::default());
        assert!(checks.iter().all(|c| c.status == Status::Ok), "{checks:#?}");
    }

    #[test]
    fn no_landlock_fails_with_its_fix() {
        let host = FakeHost {
            landlock_abi: 0,
            ..FakeHost::default()
        };
        let checks = run(&host);
        let landlock = check(&checks, "landlock");
        assert_eq!(landlock.status, Status::Fail);
        assert!(landlock.detail.contains("fails closed"), "{landlock:?}");
        assert!(
            landlock.fix.as_deref().is_some_and(|f| f.contains("lsm=")),
            "{landlock:?}"
        );
    }

    #[test]
    fn a_missing_cgroup_controller_fails_with_its_fix() {
        let host = FakeHost {
            cgroups: Ok(CgroupsFound {
                description: "cgroup v2".into(),
                problem: Some("write /sys/fs/cgroup/hapnd/cgroup.subtree_control: No such file or directory".into()),
            }),
            ..FakeHost::default()
        };
        let checks = run(&host);
        let cgroups = check(&checks, "cgroups");
        assert_eq!(cgroups.status, Status::Fail);
        assert!(
            cgroups
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("memory, cpu and pids") && f.contains("cgroup_enable=memory")),
            "{cgroups:?}"
        );

        let host = FakeHost {
            cgroups: Err("no usable cgroup controllers under /sys/fs/cgroup".into()),
            ..FakeHost::default()
        };
        let checks = run(&host);
        assert_eq!(check(&checks, "cgroups").status, Status::Fail);
    }

    #[test]
    fn a_signing_key_others_can_read_fails_with_chmod() {
        let host = FakeHost {
            key_mode: Some(0o644),
            ..FakeHost::default()
        };
        let checks = run(&host);
        let key = check(&checks, "signing key");
        assert_eq!(key.status, Status::Fail);
        assert_eq!(key.fix.as_deref(), Some("chmod 600 /data/keys/k"));
    }

    #[test]
    fn a_non_root_run_fails_naming_what_is_needed() {
        let host = FakeHost {
            euid: 1000,
            ..FakeHost::default()
        };
        let checks = run(&host);
        let privileges = check(&checks, "privileges");
        assert_eq!(privileges.status, Status::Fail);
        assert!(privileges.detail.contains("uid 1000"));
    }

    fn run(host: &FakeHost) -> Vec<Check> {
        run_checks(host, &places(true))
    }

    #[test]
    fn root_without_cap_kill_fails_naming_it_and_why() {
        // See: issue 3. Jails run under another uid, so killing one at its deadline needs CAP_KILL.
        assert!(NEEDED_CAPABILITIES.iter().any(|(cap, _)| *cap == "CAP_KILL"));
        let host = FakeHost {
            capabilities: NEEDED_CAPABILITIES
                .iter()
                .map(|(cap, _)| (*cap).to_owned())
                .filter(|cap| cap != "CAP_KILL")
                .collect(),
            ..FakeHost::default()
        };
        let checks = run(&host);
        let privileges = check(&checks, "privileges");
        assert_eq!(privileges.status, Status::Fail);
        assert!(
            privileges.detail.contains("CAP_KILL (killing jails at their deadline"),
            "{privileges:?}"
        );
        assert!(
            !privileges.detail.contains("CAP_SYS_ADMIN"),
            "only the missing one: {privileges:?}"
        );
    }

    #[test]
    fn no_user_namespaces_is_a_warning_since_the_jail_does_not_use_them() {
        // See: issue 8.
        let host = FakeHost {
            failing_namespace: Some(Namespace::User),
            ..FakeHost::default()
        };
        let checks = run(&host);
        let user = check(&checks, "user namespace");
        assert_eq!(user.status, Status::Warn, "{user:?}");
        assert!(user.detail.contains("the jail does not use them"), "{user:?}");
        assert!(user.fix.is_some(), "{user:?}");
        assert!(
            checks.iter().all(|c| c.status != Status::Fail),
            "nothing fails, so doctor exits 0: {checks:#?}"
        );
    }

    #[test]
    fn a_namespace_the_jail_needs_still_fails() {
        for namespace in [
            Namespace::Pid,
            Namespace::Net,
            Namespace::Mount,
            Namespace::Ipc,
            Namespace::Uts,
            Namespace::Cgroup,
        ] {
            let host = FakeHost {
                failing_namespace: Some(namespace),
                ..FakeHost::default()
            };
            let checks = run(&host);
            assert_eq!(
                check(&checks, namespace.check_name()).status,
                Status::Fail,
                "{namespace:?}"
            );
            assert_eq!(check(&checks, "user namespace").status, Status::Ok);
        }
    }

    #[test]
    fn without_root_the_cgroup_fix_is_delegation_not_a_kernel_parameter() {
        // See: issue 8.
        let host = FakeHost {
            euid: 1000,
            cgroups: Ok(CgroupsFound {
                description: "hybrid (v1 controllers, v2 without)".into(),
                problem: Some("create /sys/fs/cgroup/memory/hapnd: Permission denied (os error 13)".into()),
            }),
            ..FakeHost::default()
        };
        let checks = run(&host);
        let cgroups = check(&checks, "cgroups");
        assert_eq!(cgroups.status, Status::Fail);
        assert!(cgroups.detail.contains("delegated"), "{cgroups:?}");
        let fix = cgroups.fix.as_deref().expect("a fix");
        assert!(
            fix.contains("delegate a cgroup subtree") && fix.contains("Delegate=yes"),
            "{fix}"
        );
        assert!(!fix.contains("cgroup_enable"), "{fix}");

        // A delegated subtree that works is fine, root or not.
        let host = FakeHost {
            euid: 1000,
            ..FakeHost::default()
        };
        assert_eq!(check(&run(&host), "cgroups").status, Status::Ok);
    }

    #[test]
    fn the_csharp_programs_start_in_the_jail_and_say_how_long_it_took() {
        // See: issue 8.
        let host = FakeHost::default();
        let checks = run(&host);
        let present = check(&checks, "dotnet programs");
        assert_eq!(present.status, Status::Ok, "{present:?}");
        assert!(present.detail.contains("/opt/hapnd/dotnet-host"), "{present:?}");
        let compiler = check(&checks, "C# compiler");
        assert_eq!(compiler.status, Status::Ok, "{compiler:?}");
        assert!(compiler.detail.ends_with("said hello in 1840.0 ms"), "{compiler:?}");
        let worker = check(&checks, "C# worker");
        assert_eq!(worker.status, Status::Ok, "{worker:?}");
        assert_eq!(
            worker.detail,
            "started in the jail with the data dir's signing key and said hello in 95.0 ms"
        );
        assert_eq!(
            *host.started.borrow(),
            [
                DotnetProgram::Compiler,
                DotnetProgram::Worker {
                    public_key: data_dir_key()
                }
            ]
        );
    }

    #[test]
    fn without_a_signing_key_the_worker_starts_with_a_valid_stand_in_key() {
        let host = FakeHost {
            public_key: None,
            ..FakeHost::default()
        };
        let checks = run(&host);
        let worker = check(&checks, "C# worker");
        assert_eq!(worker.status, Status::Ok, "{worker:?}");
        assert!(worker.detail.contains("a stand-in key"), "{worker:?}");
        let started = host.started.borrow();
        let Some(DotnetProgram::Worker { public_key }) = started.last() else {
            panic!("the worker was started: {started:?}");
        };
        assert_ne!(*public_key, data_dir_key());
        assert!(ArtifactPublicKey::from_bytes(public_key).is_ok(), "a P-256 point");
    }

    #[test]
    fn no_build_next_to_hapnd_fails_with_the_build_command_and_starts_nothing() {
        let host = FakeHost {
            dotnet_programs: || {
                Err(DotnetHostError::NoProgram {
                    program: "Hapnd.Compiler.dll",
                    dir: PathBuf::from("/opt/hapnd/dotnet-host"),
                })
            },
            ..FakeHost::default()
        };
        let checks = run_checks(&host, &places(false));
        let present = check(&checks, "dotnet programs");
        assert_eq!(present.status, Status::Fail);
        assert!(present.detail.starts_with("not found"), "{present:?}");
        assert_eq!(
            present.fix.as_deref(),
            Some("dotnet build dotnet-host/Hapnd.slnx -c Release --artifacts-path DIR, then pass --dotnet-host DIR")
        );
        for name in ["C# compiler", "C# worker"] {
            let skipped = check(&checks, name);
            assert_eq!(skipped.status, Status::Fail, "{skipped:?}");
            assert!(skipped.detail.starts_with("not started"), "{skipped:?}");
        }
        assert!(host.started.borrow().is_empty(), "nothing to start");
    }

    #[test]
    fn a_named_folder_without_the_programs_fails_naming_the_folder() {
        let host = FakeHost {
            dotnet_programs: || {
                Err(DotnetHostError::NoProgram {
                    program: "Hapnd.Worker.dll",
                    dir: PathBuf::from("/opt/hapnd/dotnet-host/bin/Hapnd.Worker/release"),
                })
            },
            ..FakeHost::default()
        };
        let checks = run(&host);
        let present = check(&checks, "dotnet programs");
        assert_eq!(present.status, Status::Fail);
        assert_eq!(
            present.detail,
            "Hapnd.Worker.dll not found in /opt/hapnd/dotnet-host/bin/Hapnd.Worker/release"
        );
        assert!(
            present.fix.as_deref().is_some_and(|f| f
                .ends_with("--artifacts-path /opt/hapnd/dotnet-host, then pass --dotnet-host /opt/hapnd/dotnet-host")),
            "{present:?}"
        );
    }

    #[test]
    fn programs_the_jail_user_cannot_reach_fail_with_chmod() {
        let host = FakeHost {
            dotnet_programs: || Err(DotnetHostError::NotReachable(PathBuf::from("/root"))),
            ..FakeHost::default()
        };
        let checks = run(&host);
        let present = check(&checks, "dotnet programs");
        assert_eq!(present.status, Status::Fail);
        assert_eq!(present.fix.as_deref(), Some("chmod o+x /root"));
    }

    #[test]
    fn a_compiler_that_does_not_say_hello_fails_on_one_line_and_the_worker_is_still_checked() {
        let host = FakeHost {
            compiler: Err("the worker died (Exited(134)): Unhandled exception.\n   at Main()\n".into()),
            ..FakeHost::default()
        };
        let checks = run(&host);
        let compiler = check(&checks, "C# compiler");
        assert_eq!(compiler.status, Status::Fail);
        assert_eq!(
            compiler.detail,
            "the jailed compiler did not say hello: the worker died (Exited(134)): Unhandled exception. | at Main()"
        );
        assert!(compiler.fix.is_some());
        assert_eq!(check(&checks, "C# worker").status, Status::Ok);
        assert_eq!(host.started.borrow().len(), 2);
    }
}
