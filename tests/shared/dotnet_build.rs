//! `dotnet-host` built in Release into the target dir once per test binary, shared by the test targets that run the
//! C# programs (`csharp`, `ops`): `#[path = "../shared/dotnet_build.rs"] mod dotnet_build;`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `--artifacts-path` of the build: what `DotnetHost::from_build_artifacts` and `hapnd doctor --dotnet-host` take.
pub fn dotnet_host_build() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dotnet-host");
        let solution = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dotnet-host/Hapnd.slnx");
        let status = Command::new("dotnet")
            .args([
                "build",
                "-c",
                "Release",
                "--nologo",
                "-v",
                "quiet",
                "-warnaserror",
                "--artifacts-path",
            ])
            .arg(&artifacts)
            .arg(solution)
            .env("DOTNET_CLI_TELEMETRY_OPTOUT", "1")
            .env("DOTNET_NOLOGO", "1")
            .status()
            .expect("run dotnet build");
        assert!(status.success(), "dotnet-host builds");
        artifacts
    })
}
