//! The .NET runtime starts inside the jail: the seccomp filter and Landlock leave it what it needs (JIT, W^X double
//! mapping through `memfd_create`, threads, GC). The app is `tests/dotnet-hello`, built with the host's SDK.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hapnd_executor::{Outcome, SandboxSpec};

use crate::support::{run, stdout};

const DOTNET_ROOT: &str = "/usr/share/dotnet";

#[tokio::test]
async fn the_dotnet_runtime_starts_and_runs_threads_in_the_jail() {
    let build = tempfile::Builder::new()
        .prefix("hapnd-dotnet-hello-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(build.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dotnet-hello/DotnetHello.csproj");
    let status = Command::new("dotnet")
        .args(["build", "-c", "Release", "--nologo", "-v", "quiet", "--artifacts-path"])
        .arg(build.path())
        .arg(&project)
        .env("DOTNET_CLI_TELEMETRY_OPTOUT", "1")
        .env("DOTNET_NOLOGO", "1")
        .status()
        .expect("run dotnet build");
    assert!(status.success(), "the test app builds");
    let app_dir = build.path().join("bin/DotnetHello/release");
    make_readable(build.path());

    let mut spec = SandboxSpec::new(format!("{DOTNET_ROOT}/dotnet"));
    spec.args = vec![app_dir.join("DotnetHello.dll").to_string_lossy().into_owned()];
    // The runtime's own files, the C and C++ libraries it links, and the app.
    spec.read_only = vec![
        PathBuf::from(DOTNET_ROOT),
        PathBuf::from("/usr/lib"),
        PathBuf::from("/lib"),
        PathBuf::from("/lib64"),
        app_dir,
    ];
    spec.env = vec![
        ("HOME".into(), "/tmp".into()),
        ("DOTNET_ROOT".into(), DOTNET_ROOT.into()),
        ("DOTNET_NOLOGO".into(), "1".into()),
        // No diagnostics IPC socket in a jail nobody attaches to.
        ("DOTNET_EnableDiagnostics".into(), "0".into()),
        // Without /sys the runtime cannot see the cgroup's memory limit; tell it.
        (
            "DOTNET_GCHeapHardLimit".into(),
            format!("{:x}", spec.limits.memory_bytes / 2),
        ),
    ];
    let output = run(spec).await;
    let line = stdout(&output);
    assert_eq!(
        output.ended.outcome,
        Outcome::Exited(0),
        "{line} / {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        line.starts_with("hello from .NET 10.") && line.contains("4999950000,9999900000,14999850000,19999800000"),
        "{line}"
    );
}

/// The build output is created with the host's umask; the jail user must read it.
fn make_readable(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read the build dir").flatten() {
        let path = entry.path();
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if path.is_dir() {
            make_readable(&path);
        }
    }
}
