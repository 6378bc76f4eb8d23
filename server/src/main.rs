//! The `hapnd` command: `serve` runs the server; `tenant` and `key` manage the catalog, also while it runs; `doctor`
//! checks the host; `sandbox exec` runs a program in the workers' jail.
//!
//! The binary is also the jail's init and the doctor's echo worker: the executor starts it under those names
//! (`argv[0]`), and `main` hands over before anything else runs.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hapnd_server::config::{DEFAULT_DATA_DIR, ServeArgs};

// The request path allocates many small, short-lived buffers across threads; mimalloc handles that pattern with
// less contention and fewer syscalls than glibc malloc, which showed up in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hapnd", version, about = "Hapnd: a self-hosted event-sourcing platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Serve(ServeArgs),
    /// Create and list tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create, list and revoke API keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check that this host can run Hapnd and jail user code
    Doctor(commands::doctor::DoctorArgs),
    /// Run programs in the jail that workers get
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Run PROGRAM in exactly the workers' jail, with this terminal's standard streams
    Exec(commands::sandbox::ExecArgs),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first API key
    Create {
        /// 1-63 characters from a-z, 0-9, '_' and '-'
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List tenants
    List {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create another API key for a tenant
    Create {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a key by its id (key_...); requests with it fail from the next one on
    Revoke {
        key_id: String,
        #[command(flatten)]
        target: Target,
    },
    /// List a tenant's keys (ids only; secrets are never stored)
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the catalog is, and how to print.
#[derive(clap::Args)]
struct Target {
    #[arg(long, env = "HAPND_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    if hapnd_executor::init::invoked_as_init() {
        hapnd_executor::init::main();
    }
    if hapnd_executor::worker::echo::invoked_as_echo_worker() {
        hapnd_executor::worker::echo::main();
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Tenant(TenantCommand::Create { name, target }) => {
            commands::catalog::create_tenant(&target.data_dir, &name, target.json)
        }
        Command::Tenant(TenantCommand::List { target }) => {
            commands::catalog::list_tenants(&target.data_dir, target.json)
        }
        Command::Key(KeyCommand::Create { tenant, target }) => {
            commands::catalog::create_key(&target.data_dir, &tenant, target.json)
        }
        Command::Key(KeyCommand::Revoke { key_id, target }) => {
            commands::catalog::revoke_key(&target.data_dir, &key_id, target.json)
        }
        Command::Key(KeyCommand::List { tenant, target }) => {
            commands::catalog::list_keys(&target.data_dir, &tenant, target.json)
        }
        Command::Doctor(args) => return commands::doctor::run(&args),
        Command::Sandbox(SandboxCommand::Exec(args)) => return commands::sandbox::exec(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hapnd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
