//! The operator tools through the real `hapnd` binary, as root: `hapnd doctor` and `hapnd sandbox exec` with the real
//! jail. The probe program is the executor's (`executor/tests/probes/probe.c`), built statically.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const HAPND: &str = env!("CARGO_BIN_EXE_hapnd");

/// A folder the jail user can enter, with the probe built in it.
struct Probe {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    binary: PathBuf,
}

fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("hapnd-ops-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let binary = dir.path().join("probe");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../executor/tests/probes/probe.c");
        let status = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&binary)
            .arg(&source)
            .status()
            .expect("run gcc");
        assert!(status.success(), "the probe compiles");
        Probe {
            dir: dir.path().to_owned(),
            binary,
            _dir: dir,
        }
    })
}

/// `hapnd sandbox exec [options] -- probe args`, with `input` on stdin.
fn sandbox_exec(options: &[&str], args: &[&str], input: &[u8]) -> Output {
    let probe = probe();
    let mut child = Command::new(HAPND)
        .args(["sandbox", "exec", "--ro"])
        .arg(&probe.dir)
        .args(options)
        .arg("--")
        .arg(&probe.binary)
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

#[test]
fn doctor_reports_every_check_ok_on_this_host() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = Command::new(HAPND)
        .args(["doctor", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("run doctor");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let not_ok: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] != "ok")
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(report["ok"], true);
    assert!(output.status.success());
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for expected in [
        "privileges",
        "cgroups",
        "pivot_root",
        "landlock",
        "seccomp",
        "dotnet",
        "jailed worker",
    ] {
        assert!(names.contains(&expected), "{expected} is checked: {names:?}");
    }
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
fn the_program_runs_as_a_non_root_user() {
    let output = sandbox_exec(&[], &["identity"], b"");
    assert_eq!(
        text(&output.stdout),
        "identity: uid=65534/65534/65534 gid=65534/65534/65534 groups=0"
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

#[test]
fn no_option_weakens_the_jail() {
    for flag in [
        "--privileged",
        "--no-seccomp",
        "--no-landlock",
        "--share-net",
        "--uid=0",
        "--keep-caps",
    ] {
        let output = Command::new(HAPND)
            .args(["sandbox", "exec", flag, "--", "/bin/true"])
            .output()
            .expect("run hapnd");
        assert_eq!(output.status.code(), Some(2), "{flag} is not an option");
    }
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
