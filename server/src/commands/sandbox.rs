//! `hapnd sandbox exec`: runs any program in exactly the jail that workers get (`executor/JAIL.md`), with the
//! caller's standard streams, so operators and outside test suites can check the jail with their own programs.
//!
//! Options only narrow the jail: there is no flag to keep capabilities, skip Landlock or seccomp, run as root, or
//! share the host's network or pid namespace.
//!
//! Exit status: the program's own, unless the jail ended it or intervened, which one line on stderr explains:
//!
//! | status  | meaning                                                       |
//! |---------|---------------------------------------------------------------|
//! | 124     | timed out (`--timeout`) and killed                            |
//! | 125     | the jail could not be set up (nothing ran)                    |
//! | 126     | the pids limit refused a fork or thread (`--pids`)            |
//! | 137     | out of memory (`--memory`): killed by the kernel              |
//! | 159     | killed by the seccomp filter (SIGSYS)                         |
//! | 128 + N | died of signal N                                              |

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hapnd_executor::{Ended, Jail, Outcome, Sandbox, SandboxConfig, SandboxSpec, StdioMode};

pub const EXIT_TIMEOUT: u8 = 124;
pub const EXIT_SETUP_FAILED: u8 = 125;
pub const EXIT_PIDS_LIMIT: u8 = 126;
pub const EXIT_OUT_OF_MEMORY: u8 = 137;
pub const EXIT_SECCOMP: u8 = 159;

#[derive(clap::Args)]
pub struct ExecArgs {
    /// A host path the program may read, at the same place in the jail (repeatable; e.g. the program's folder)
    #[arg(long = "ro", value_name = "PATH")]
    read_only: Vec<PathBuf>,
    /// Size of the writable scratch dir, /tmp in the jail (e.g. 64MiB)
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    scratch_size: u64,
    /// Memory of the whole jail, no swap (e.g. 256MiB)
    #[arg(long, value_name = "BYTES", default_value = "256MiB", value_parser = parse_bytes)]
    memory: u64,
    /// Processes and threads in the jail
    #[arg(long, default_value_t = 64)]
    pids: u32,
    /// CPU time per wall-clock time, in cores (e.g. 0.5)
    #[arg(long, value_name = "CORES", default_value = "1", value_parser = parse_cores)]
    cpu: u32,
    /// Wall-clock limit of the whole run (e.g. 5s, 500ms, 2m)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// An environment variable for the program (repeatable); nothing else is passed
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Working directory in the jail (default: the scratch dir)
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// The program (absolute, or relative to here) and its arguments
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    command: Vec<String>,
}

/// The sandbox of this `hapnd` binary: it is its own jail init.
pub fn host_sandbox() -> anyhow::Result<Arc<Sandbox>> {
    let exe = std::env::current_exe().context("find the hapnd binary")?;
    Ok(Arc::new(Sandbox::new(SandboxConfig::new(exe))?))
}

pub fn exec(args: ExecArgs) -> ExitCode {
    match exec_inner(args) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("hapnd sandbox: {error:#}");
            ExitCode::from(EXIT_SETUP_FAILED)
        }
    }
}

fn exec_inner(args: ExecArgs) -> anyhow::Result<u8> {
    let spec = spec_from(args)?;
    let sandbox = host_sandbox()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let timeout = spec.limits.request_timeout;
    let (memory, pids) = (spec.limits.memory_bytes, spec.limits.pids);
    let ended = runtime.block_on(run(&sandbox, spec))?;
    Ok(report(&ended, timeout, memory, pids))
}

fn spec_from(args: ExecArgs) -> anyhow::Result<SandboxSpec> {
    let mut command = args.command.into_iter();
    let program = PathBuf::from(command.next().context("a program to run")?);
    let program = if program.is_absolute() {
        program
    } else {
        std::path::absolute(&program).with_context(|| format!("resolve {}", program.display()))?
    };
    let mut spec = SandboxSpec::new(program);
    spec.args = command.collect();
    spec.read_only = args.read_only;
    spec.scratch.size_bytes = args.scratch_size;
    spec.env = args.env;
    spec.cwd = args.cwd;
    spec.limits.memory_bytes = args.memory;
    spec.limits.pids = args.pids;
    spec.limits.cpu_millicores = args.cpu;
    spec.limits.request_timeout = args.timeout;
    Ok(spec)
}

async fn run(sandbox: &Arc<Sandbox>, spec: SandboxSpec) -> anyhow::Result<Ended> {
    let deadline = spec.limits.request_timeout;
    let jail: Jail = sandbox.start_async(spec, [StdioMode::Inherit; 3]).await?;
    tokio::select! {
        _ = jail.wait_for_exit() => Ok(jail.wait().await?),
        _ = tokio::time::sleep(deadline) => {
            jail.kill();
            let mut ended = jail.wait().await?;
            ended.outcome = Outcome::Timeout;
            Ok(ended)
        }
        _ = tokio::signal::ctrl_c() => {
            // The jail has its own session, so the terminal's Ctrl-C reaches only us: pass it on as a kill.
            jail.kill();
            let mut ended = jail.wait().await?;
            ended.outcome = Outcome::Signaled(libc::SIGINT);
            Ok(ended)
        }
    }
}

/// The exit status for `ended`, with one line on stderr when the jail intervened.
fn report(ended: &Ended, timeout: Duration, memory: u64, pids: u32) -> u8 {
    let say = |line: String| eprintln!("hapnd sandbox: {line}");
    match ended.outcome {
        Outcome::Timeout => {
            say(format!("timed out after {timeout:?} and killed"));
            EXIT_TIMEOUT
        }
        Outcome::OutOfMemory => {
            say(format!("out of memory (limit {} MiB): killed", memory / (1024 * 1024)));
            EXIT_OUT_OF_MEMORY
        }
        Outcome::SeccompKilled => {
            say("killed by the seccomp filter (a forbidden system call)".into());
            EXIT_SECCOMP
        }
        _ if ended.pids_limit_hit => {
            say(format!(
                "the pids limit ({pids}) refused a fork or thread; the program ended with {:?}",
                ended.outcome
            ));
            EXIT_PIDS_LIMIT
        }
        Outcome::Exited(code) => u8::try_from(code).unwrap_or(1),
        Outcome::Signaled(signal) => {
            say(format!("killed by signal {signal}"));
            u8::try_from(128 + signal).unwrap_or(255)
        }
        Outcome::OutputLimit => {
            say("wrote more than its output limit: killed".into());
            1
        }
    }
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64MiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use B, KiB, MiB or GiB")),
    };
    number
        .checked_mul(factor)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} must be above 0 and fit 64 bits"))
}

fn parse_cores(text: &str) -> Result<u32, String> {
    let cores: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of cores like 0.5"))?;
    if !(0.001..=1024.0).contains(&cores) {
        return Err(format!("{cores} cores is out of range (0.001 to 1024)"));
    }
    Ok((cores * 1000.0).round() as u32)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 5s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown duration unit {other:?}; use ms, s or m")),
    };
    if seconds <= 0.0 || seconds > 86_400.0 {
        return Err(format!("{text:?} is out of range (above 0, at most a day)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cores_durations_and_variables_parse_or_say_why_not() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("12 parsecs").is_err());
        assert_eq!(parse_cores("0.5"), Ok(500));
        assert!(parse_cores("0").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
    }
}
