//! `hapnd doctor`: checks that this host can run Hapnd and jail user code, and says how to fix what it cannot.
//! Exit status 0 when nothing fails, 1 otherwise.

mod checks;
mod host;

use std::path::PathBuf;
use std::process::ExitCode;

use hapnd_server::config::DEFAULT_DATA_DIR;

use checks::{Places, Status, run_checks};
use host::RealHost;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The data dir the server will use
    #[arg(long, env = "HAPND_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The artifact signing key (default: in the data dir)
    #[arg(long, env = "HAPND_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// The built C# compiler and worker: the --artifacts-path of
    /// `dotnet build dotnet-host/Hapnd.slnx -c Release` (default: the folder dotnet-host next to hapnd)
    #[arg(long, env = "HAPND_DOTNET_HOST", value_name = "DIR")]
    dotnet_host: Option<PathBuf>,
    /// Print JSON for automation
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DoctorArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("hapnd doctor: find the hapnd binary: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signing_key = args
        .signing_key
        .clone()
        .unwrap_or_else(|| hapnd_server::signing_key::default_path(&args.data_dir));
    let (dotnet_host, dotnet_host_given) = match &args.dotnet_host {
        Some(dir) => (dir.clone(), true),
        None => (hapnd_server::config::default_dotnet_host(), false),
    };
    let places = Places {
        data_dir: args.data_dir.clone(),
        signing_key,
        dotnet_host,
        dotnet_host_given,
    };
    let checks = run_checks(&RealHost { exe }, &places);
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if args.json {
        let report = serde_json::json!({ "ok": !failed, "checks": checks });
        println!("{report}");
    } else {
        for check in &checks {
            let status = match check.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("{status}  {:<18} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("      {:<18} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            if failed {
                "some checks failed"
            } else {
                "all checks passed"
            }
        );
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
