//! The operator tools through the real `hapnd` binary, as root: `hapnd doctor` and `hapnd sandbox exec` with the real
//! jail. The probe programs are the executor's (`executor/tests/probes/probe.c`) and this suite's own
//! (`ops-probe.c`, what the executor's has no action for), built statically.

#[path = "../shared/dotnet_build.rs"]
mod dotnet_build;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const HAPND: &str = env!("CARGO_BIN_EXE_hapnd");

/// A folder the jail user can enter, with the probes built in it.
struct Probe {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    binary: PathBuf,
    /// `ops-probe.c`.
    ops: PathBuf,
}

fn compile_static(source: &Path, binary: &Path) {
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(binary)
        .arg(source)
        .status()
        .expect("run gcc");
    assert!(status.success(), "{} compiles", source.display());
}

fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("hapnd-ops-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let binary = dir.path().join("probe");
        compile_static(&repo.join("executor/tests/probes/probe.c"), &binary);
        let ops = dir.path().join("ops-probe");
        compile_static(&repo.join("tests/ops/ops-probe.c"), &ops);
        Probe {
            dir: dir.path().to_owned(),
            binary,
            ops,
            _dir: dir,
        }
    })
}

/// `hapnd sandbox exec [options] -- probe args`, with `input` on stdin.
fn sandbox_exec(options: &[&str], args: &[&str], input: &[u8]) -> Output {
    run_in_jail(&probe().binary, options, args, input)
}

/// `hapnd sandbox exec [options] -- ops-probe args`.
fn ops_probe(options: &[&str], args: &[&str]) -> Output {
    run_in_jail(&probe().ops, options, args, b"")
}

fn run_in_jail(program: &Path, options: &[&str], args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(HAPND)
        .args(["sandbox", "exec", "--ro"])
        .arg(&probe().dir)
        .args(options)
        .arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hapnd");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait for hapnd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

/// `hapnd doctor --json --data-dir DATA [options]`: its exit status and report.
fn doctor_json(data: &Path, options: &[&str]) -> (Option<i32>, serde_json::Value) {
    let output = Command::new(HAPND)
        .args(["doctor", "--json", "--data-dir"])
        .arg(data)
        .args(options)
        .env_remove("HAPND_DOTNET_HOST")
        .output()
        .expect("run doctor");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}): {}", text(&output.stdout)));
    (output.status.code(), report)
}

fn checks(report: &serde_json::Value) -> &[serde_json::Value] {
    report["checks"].as_array().expect("checks")
}

fn find<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    checks(report)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report:#}"))
}

#[test]
fn doctor_reports_every_check_ok_on_this_host() {
    let data = tempfile::tempdir().expect("tempdir");
    let build = dotnet_build::dotnet_host_build().to_str().expect("utf-8");
    let (status, report) = doctor_json(data.path(), &["--dotnet-host", build]);
    let not_ok: Vec<&serde_json::Value> = checks(&report).iter().filter(|c| c["status"] != "ok").collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(report["ok"], true);
    assert_eq!(status, Some(0));
    let names: Vec<&str> = checks(&report).iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "privileges",
        "cgroups",
        "pivot_root",
        "landlock",
        "seccomp",
        "dotnet",
        "jailed worker",
        "dotnet programs",
        "C# compiler",
        "C# worker",
        "data dir",
        "sqlite",
        "signing key",
    ] {
        assert!(names.contains(&expected), "{expected} is checked: {names:?}");
    }
    // See: issue 8. The C# programs really started in the jail: each says how long its hello took.
    for name in ["C# compiler", "C# worker"] {
        let detail = find(&report, name)["detail"].as_str().expect("a detail");
        let took = detail
            .rsplit_once("said hello in ")
            .and_then(|(_, ms)| ms.strip_suffix(" ms"))
            .and_then(|ms| ms.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} says how long it took: {detail}"));
        assert!(took > 0.0, "{detail}");
    }
    assert!(
        find(&report, "C# worker")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("a stand-in key")),
        "a fresh data dir has no signing key yet: {report:#}"
    );
}

#[test]
fn doctor_without_the_csharp_programs_fails_with_the_build_command_and_exit_1() {
    // See: issue 8.
    let data = tempfile::tempdir().expect("tempdir");
    let missing = data.path().join("no-build-here");
    let missing = missing.to_str().expect("utf-8");
    let (status, report) = doctor_json(data.path(), &["--dotnet-host", missing]);
    assert_eq!(status, Some(1));
    assert_eq!(report["ok"], false);
    let failed: BTreeSet<&str> = checks(&report)
        .iter()
        .filter(|c| c["status"] == "fail")
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from(["dotnet programs", "C# compiler", "C# worker"]),
        "{report:#}"
    );
    let programs = find(&report, "dotnet programs");
    assert_eq!(programs["detail"], format!("Hapnd.Compiler.dll not found in {missing}"));
    assert_eq!(
        programs["fix"],
        format!(
            "dotnet build dotnet-host/Hapnd.slnx -c Release --artifacts-path {missing}, then pass --dotnet-host \
             {missing}"
        )
    );
    assert_eq!(
        find(&report, "C# compiler")["detail"],
        "not started: the dotnet programs are missing"
    );

    // The same run for a person: the failing item, its fix and the verdict.
    let output = Command::new(HAPND)
        .args(["doctor", "--data-dir"])
        .arg(data.path())
        .env("HAPND_DOTNET_HOST", missing)
        .output()
        .expect("run doctor");
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "FAIL  dotnet programs    Hapnd.Compiler.dll not found in {missing}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("fix: dotnet build dotnet-host/Hapnd.slnx"), "{stdout}");
    assert!(stdout.ends_with("some checks failed"), "{stdout}");
}

#[test]
fn doctor_as_a_non_root_user_fails_naming_root() {
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let output = Command::new(HAPND)
        .args(["doctor", "--json", "--data-dir"])
        .arg(data.path())
        .args(["--dotnet-host", "/nonexistent"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run doctor as nobody");
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    let privileges = find(&report, "privileges");
    assert_eq!(privileges["status"], "fail");
    assert!(
        privileges["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("running as uid 65534; the jail needs root")),
        "{privileges}"
    );
    assert!(
        privileges["fix"]
            .as_str()
            .is_some_and(|f| f.starts_with("run hapnd as root"))
    );
    assert_eq!(find(&report, "jailed worker")["status"], "fail", "no jail without root");
}

#[test]
fn a_static_program_cannot_read_the_hosts_secrets() {
    let output = sandbox_exec(&[], &["read-file", "/etc/shadow"], b"");
    assert_eq!(text(&output.stdout), "read-file: refused (open: ENOENT)");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn a_read_only_folder_is_visible_but_not_writable() {
    let folder = tempfile::Builder::new()
        .prefix("hapnd-ops-ro-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = folder.path().join("data.txt");
    std::fs::write(&file, "visible").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let ro = folder.path().to_str().expect("utf-8");
    // The probe calls a successful read an escape (exit 1): here it proves the folder is visible.
    let read = sandbox_exec(&["--ro", ro], &["read-file", file.to_str().expect("utf-8")], b"");
    assert!(text(&read.stdout).contains("ESCAPED"), "{}", text(&read.stdout));
    let new_file = folder.path().join("new.txt");
    let write = sandbox_exec(&["--ro", ro], &["write-file", new_file.to_str().expect("utf-8")], b"");
    assert_eq!(text(&write.stdout), "write-file: refused (open: EROFS)");
    assert!(!new_file.exists());
}

#[test]
fn a_single_read_only_file_is_visible_and_nothing_beside_it() {
    let folder = tempfile::Builder::new()
        .prefix("hapnd-ops-ro-file-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = folder.path().join("config.txt");
    let beside = folder.path().join("secret.txt");
    for path in [&file, &beside] {
        std::fs::write(path, "contents").expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let ro = file.to_str().expect("utf-8");
    let read = sandbox_exec(&["--ro", ro], &["read-file", ro], b"");
    assert!(
        text(&read.stdout).contains("ESCAPED"),
        "the file is readable: {}",
        text(&read.stdout)
    );
    let other = sandbox_exec(&["--ro", ro], &["read-file", beside.to_str().expect("utf-8")], b"");
    assert!(
        text(&other.stdout).contains("refused"),
        "its neighbour is not visible: {}",
        text(&other.stdout)
    );
}

#[test]
fn the_program_runs_as_a_non_root_user() {
    // The jail's ids are the executor's to choose (`SandboxConfig::uid`); whatever they are, real, effective and
    // saved ids agree, none is root's, and no supplementary group is kept.
    let output = sandbox_exec(&[], &["identity"], b"");
    let stdout = text(&output.stdout);
    let ids = |kind: &str| -> Vec<u32> {
        stdout
            .split_whitespace()
            .find_map(|word| word.strip_prefix(kind))
            .unwrap_or_else(|| panic!("{kind} in {stdout}"))
            .split('/')
            .map(|id| id.parse().unwrap_or_else(|_| panic!("an id in {stdout}")))
            .collect()
    };
    for kind in ["uid=", "gid="] {
        let found = ids(kind);
        assert_eq!(found.len(), 3, "{stdout}");
        assert!(found.iter().all(|id| *id == found[0] && *id != 0), "{stdout}");
    }
    assert!(
        stdout.starts_with("identity: ") && stdout.ends_with(" groups=0"),
        "{stdout}"
    );
}

#[test]
fn exit_codes_and_standard_streams_pass_through() {
    let output = sandbox_exec(&[], &["echo", "42"], b"through the jail\n");
    assert_eq!(output.stdout, b"through the jail\n");
    assert_eq!(output.status.code(), Some(42));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

#[test]
fn the_jail_ending_a_program_gives_a_documented_status_and_a_reason() {
    let output = sandbox_exec(&["--timeout", "1s"], &["spin"], b"");
    assert_eq!(output.status.code(), Some(124));
    assert_eq!(text(&output.stderr), "hapnd sandbox: timed out after 1s and killed");

    let output = sandbox_exec(&["--memory", "32MiB"], &["memory-hog"], b"");
    assert_eq!(output.status.code(), Some(137));
    assert_eq!(
        text(&output.stderr),
        "hapnd sandbox: out of memory (limit 32 MiB): killed"
    );

    let output = sandbox_exec(&["--pids", "8"], &["fork-bomb"], b"");
    assert_eq!(output.status.code(), Some(126));
    assert!(text(&output.stderr).starts_with("hapnd sandbox: the pids limit (8) refused a fork"));
}

/// The long options `hapnd sandbox exec --help` lists.
fn exec_options() -> BTreeSet<String> {
    let output = Command::new(HAPND)
        .args(["sandbox", "exec", "--help"])
        .output()
        .expect("run hapnd");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("utf-8 help");
    let options = help
        .split_once("\nOptions:\n")
        .unwrap_or_else(|| panic!("an options section: {help}"))
        .1;
    options
        .lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with("--")))
        .map(|flag| flag.trim_end_matches(',').to_owned())
        .collect()
}

#[test]
fn no_option_weakens_the_jail() {
    // See: issue 8. Every option narrows the jail or places the program in it: the set is exactly the issue's, so a
    // new flag (keep a capability, skip seccomp, share a namespace, run as root) fails here until it is reviewed.
    let documented: BTreeSet<String> = [
        "--ro",
        "--scratch-size",
        "--memory",
        "--pids",
        "--cpu",
        "--timeout",
        "--env",
        "--cwd",
    ]
    .map(str::to_owned)
    .into();
    let mut expected = documented.clone();
    expected.insert("--help".to_owned());
    assert_eq!(exec_options(), expected);

    // The README's operator section documents the same set.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README");
    let usage = readme
        .split_once("hapnd sandbox exec --ro")
        .map(|(_, rest)| format!("--ro{}", rest.split_once(" -- ").expect("the usage ends at --").0))
        .expect("the README shows sandbox exec's usage");
    let in_readme: BTreeSet<String> = usage
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
        .filter(|word| word.starts_with("--"))
        .map(|word| word.split('=').next().unwrap_or(word).to_owned())
        .collect();
    assert_eq!(in_readme, documented, "README: {usage}");
}

#[test]
fn a_system_call_of_another_architecture_is_killed_by_seccomp() {
    // The guard filter kills any process making an i386 call (int $0x80), whose numbers would slip past a policy
    // keyed for x86_64 (JAIL.md step 9).
    let output = ops_probe(&[], &["int80"]);
    assert_eq!(output.status.code(), Some(159), "{}", text(&output.stdout));
    assert_eq!(
        text(&output.stderr),
        "hapnd sandbox: killed by the seccomp filter (a forbidden system call)"
    );
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
}

#[test]
fn only_the_env_options_reach_the_program() {
    let output = Command::new(HAPND)
        .args(["sandbox", "exec", "--ro"])
        .arg(&probe().dir)
        .args([
            "--env",
            "GREETING=hello world",
            "--env",
            "EMPTY=",
            "--env",
            "EQUALS=a=b",
        ])
        .arg("--")
        .arg(&probe().ops)
        .arg("environ")
        .env("HAPND_TEST_LEAK", "must not pass")
        .output()
        .expect("run hapnd");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "GREETING=hello world\nEMPTY=\nEQUALS=a=b\n"
    );

    let output = ops_probe(&[], &["environ"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        output.stdout.is_empty(),
        "no --env, no environment: {}",
        text(&output.stdout)
    );
}

#[test]
fn the_program_starts_in_the_scratch_dir_or_in_cwd() {
    let output = ops_probe(&[], &["cwd"]);
    assert_eq!(text(&output.stdout), "/tmp");
    let dir = probe().dir.to_str().expect("utf-8");
    let output = ops_probe(&["--cwd", dir], &["cwd"]);
    assert_eq!(text(&output.stdout), dir);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn the_scratch_dir_holds_scratch_size_and_no_more() {
    for (option, bytes) in [("4MiB", 4_u64 << 20), ("8MiB", 8 << 20)] {
        let output = sandbox_exec(
            &["--scratch-size", option],
            &["fill-scratch", "/tmp", &bytes.to_string()],
            b"",
        );
        let stdout = text(&output.stdout);
        let written: u64 = stdout
            .strip_prefix("fill-scratch: refused (ENOSPC after ")
            .and_then(|rest| rest.strip_suffix(" bytes)"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("writing past {option} fails with ENOSPC: {stdout}"));
        // Up to the size, less what the filesystem keeps for itself, and never more.
        assert!(
            written <= bytes && written >= bytes - (1 << 20),
            "{option}: wrote {written} bytes"
        );
    }
}

#[test]
fn cpu_sets_the_jails_quota_and_the_kernel_holds_the_program_to_it() {
    // The quota of the running jail's cgroup: the probe echoes a line back, so it runs while the file is read.
    let mut child = Command::new(HAPND)
        .args(["sandbox", "exec", "--cpu", "0.25", "--ro"])
        .arg(&probe().dir)
        .arg("--")
        .arg(&probe().binary)
        .arg("echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hapnd");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdin.write_all(b"running\n").expect("write stdin");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read stdout");
    assert_eq!(line, "running\n", "the program runs in the jail");
    let quota = jail_cpu_quota(child.id());
    drop(stdin);
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    assert_eq!(quota, "25000 100000", "a quarter of each 100 ms period");

    // Enforced: spinning for 600 ms of wall-clock time at a tenth of a core gets about 60 ms of CPU time.
    let output = ops_probe(&["--cpu", "0.1"], &["spin-for", "600"]);
    let stdout = text(&output.stdout);
    let (cpu_ms, wall_ms) = stdout
        .strip_prefix("cpu-ms=")
        .and_then(|rest| rest.split_once(" wall-ms="))
        .and_then(|(cpu, wall)| Some((cpu.parse::<u64>().ok()?, wall.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("the probe reports its times: {stdout}"));
    assert!(wall_ms >= 600, "{stdout}");
    assert!(
        cpu_ms * 4 < wall_ms,
        "at most about 10% of the time, well under 25%: {stdout}"
    );
}

/// "QUOTA PERIOD" of the one jail of the `hapnd` process `pid`, from cgroup v1's cpu controller or cgroup v2.
fn jail_cpu_quota(pid: u32) -> String {
    let prefix = format!("jail-{pid}-");
    for (parent, v1) in [("/sys/fs/cgroup/cpu/hapnd", true), ("/sys/fs/cgroup/hapnd", false)] {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        let Some(jail) = entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        else {
            continue;
        };
        let read = |file: &str| {
            std::fs::read_to_string(jail.join(file))
                .unwrap_or_else(|e| panic!("read {file} of {}: {e}", jail.display()))
                .trim()
                .to_owned()
        };
        return if v1 {
            format!("{} {}", read("cpu.cfs_quota_us"), read("cpu.cfs_period_us"))
        } else {
            read("cpu.max")
        };
    }
    panic!("no cgroup of the jail of hapnd {pid}")
}

#[test]
fn nothing_is_left_behind() {
    let mut child = Command::new(HAPND)
        .args(["sandbox", "exec", "--ro"])
        .arg(&probe().dir)
        .args(["--pids", "16", "--"])
        .arg(&probe().binary)
        .arg("fork-bomb")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hapnd");
    let pid = child.id();
    assert_eq!(child.wait().expect("wait").code(), Some(126));
    let prefix = format!("jail-{pid}-");
    for hierarchy in ["memory", "cpu", "pids", "unified", ""] {
        let parent = Path::new("/sys/fs/cgroup").join(hierarchy).join("hapnd");
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        let left: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect();
        assert!(left.is_empty(), "cgroups left in {}: {left:?}", parent.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains("newroot") && !mounts.contains("oldroot"));
    // A cgroup can only be removed once no process is left in it: the checks above also prove no process survived.
}

#[test]
fn a_non_root_caller_is_refused_with_a_clear_error() {
    let output = Command::new(HAPND)
        .args(["sandbox", "exec", "--", "/bin/true"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run hapnd as nobody");
    assert_eq!(output.status.code(), Some(125));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("the sandbox needs root"), "{stderr}");
}
