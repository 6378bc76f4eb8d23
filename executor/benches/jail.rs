//! The jail's cost, measured against the same program without it, in one run:
//!
//! - **cold start**: start a trivial program (the probe's `exit 0`) and wait for it to end, jailed
//!   (`Sandbox::run`: cgroup, namespaces, root, Landlock, seccomp, then the cleanup) vs unjailed (fork and exec);
//! - **warm round trip**: one small request to an already running worker (`tests/probes/worker.c`) and its answer,
//!   jailed (`Worker::call`) vs the same binary started without a jail, over the same kind of pipes with the same
//!   framing and JSON code.
//!
//! Targets (the executor issue): warm overhead ≤ 20 µs at p50; cold jailed ≤ 2 × unjailed + 5 ms.
//!
//! `cargo bench -p hapnd-executor --bench jail [-- --cold N --warm N]`; needs root, gcc and a static glibc.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hapnd_executor::worker::protocol::{self, DEFAULT_MAX_FRAME_BYTES, Hello, Request, Response};
use hapnd_executor::{Outcome, Sandbox, SandboxConfig, SandboxSpec, Worker, WorkerConfig};
use serde_json::value::RawValue;
use tokio::net::unix::pipe;

struct Options {
    cold: usize,
    warm: usize,
}

fn main() -> anyhow::Result<()> {
    let mut options = Options {
        cold: 200,
        warm: 20_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cold" => options.cold = args.next().context("--cold N")?.parse()?,
            "--warm" => options.warm = args.next().context("--warm N")?.parse()?,
            "--bench" => {}
            other => bail!("unknown option {other}; use --cold N --warm N"),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(&options))
}

async fn run(options: &Options) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("hapnd-bench-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let probe = build(dir.path(), "probe")?;
    let worker = build(dir.path(), "worker")?;
    let mut config = SandboxConfig::new(env!("CARGO_BIN_EXE_hapnd-sandbox-init"));
    config.cgroup_parent = "hapnd-bench".into();
    let sandbox = Arc::new(Sandbox::new(config).context("this host can build jails (run as root)")?);
    let spec = |program: &Path, args: &[&str]| {
        let mut spec = SandboxSpec::new(program);
        spec.args = args.iter().map(|a| (*a).to_owned()).collect();
        spec.read_only = vec![dir.path().to_owned()];
        spec
    };

    eprintln!(
        "cold starts: {} jailed and {} unjailed, interleaved",
        options.cold, options.cold
    );
    let mut cold_jailed = Vec::with_capacity(options.cold);
    let mut cold_plain = Vec::with_capacity(options.cold);
    for _ in 0..options.cold {
        let started = Instant::now();
        let output = sandbox.run(spec(&probe, &["exit", "0"]), Vec::new()).await?;
        cold_jailed.push(started.elapsed());
        if output.ended.outcome != Outcome::Exited(0) {
            bail!("the jailed probe ended with {:?}", output.ended.outcome);
        }
        let started = Instant::now();
        let status = Command::new(&probe).args(["exit", "0"]).env_clear().status()?;
        cold_plain.push(started.elapsed());
        if !status.success() {
            bail!("the unjailed probe failed: {status}");
        }
    }

    eprintln!(
        "warm round trips: {} jailed and {} unjailed, in interleaved blocks",
        options.warm, options.warm
    );
    let mut jailed = Worker::start(&sandbox, spec(&worker, &[]), WorkerConfig::default()).await?;
    let mut plain = PlainWorker::start(&worker).await?;
    let body = RawValue::from_string(r#"{"cmd":"echo","aggregateId":"order_123","version":7}"#.into())?;
    let mut warm_jailed = Vec::with_capacity(options.warm);
    let mut warm_plain = Vec::with_capacity(options.warm);
    let block = 500;
    // A first block of each to warm caches, not measured.
    for _ in 0..block {
        jailed.call(&body).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        plain.call(&body).await?;
    }
    while warm_jailed.len() < options.warm {
        for _ in 0..block {
            let started = Instant::now();
            jailed.call(&body).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            warm_jailed.push(started.elapsed());
        }
        for _ in 0..block {
            let started = Instant::now();
            plain.call(&body).await?;
            warm_plain.push(started.elapsed());
        }
    }
    jailed.shutdown().await;
    plain.stop();

    let cold = (percentiles(&mut cold_jailed), percentiles(&mut cold_plain));
    let warm = (percentiles(&mut warm_jailed), percentiles(&mut warm_plain));
    println!(
        "hapnd jail bench: cgroup v{}, {} CPUs, {} cold starts and {} warm round trips each",
        sandbox.cgroup_version(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.cold,
        options.warm
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10}  target",
        "", "jailed p50", "p99", "plain p50", "p99"
    );
    let cold_limit = cold.1.0 * 2 + Duration::from_millis(5);
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10}  jailed p50 ≤ 2 × plain + 5 ms = {}: {}",
        "cold start (run to exit)",
        show(cold.0.0),
        show(cold.0.1),
        show(cold.1.0),
        show(cold.1.1),
        show(cold_limit),
        verdict(cold.0.0 <= cold_limit)
    );
    let overhead = warm.0.0.saturating_sub(warm.1.0);
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10}  overhead p50 {} ≤ 20 µs: {}",
        "warm round trip",
        show(warm.0.0),
        show(warm.0.1),
        show(warm.1.0),
        show(warm.1.1),
        show(overhead),
        verdict(overhead <= Duration::from_micros(20))
    );
    Ok(())
}

/// The same worker binary without a jail, spoken to with the same framing and JSON code as `Worker`.
struct PlainWorker {
    child: std::process::Child,
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    next_id: u64,
}

impl PlainWorker {
    async fn start(program: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = pipe::Sender::from_owned_fd(child.stdin.take().context("stdin")?.into())?;
        let mut stdout = pipe::Receiver::from_owned_fd(child.stdout.take().context("stdout")?.into())?;
        let hello: Hello = protocol::parse(&protocol::read_frame(&mut stdout, DEFAULT_MAX_FRAME_BYTES).await?)?;
        if hello.protocol != protocol::PROTOCOL_VERSION {
            bail!("unexpected protocol {}", hello.protocol);
        }
        Ok(PlainWorker {
            child,
            stdin,
            stdout,
            next_id: 0,
        })
    }

    async fn call(&mut self, body: &RawValue) -> anyhow::Result<Box<RawValue>> {
        self.next_id += 1;
        let request = serde_json::to_vec(&Request { id: self.next_id, body })?;
        protocol::write_frame(&mut self.stdin, &request).await?;
        let response: Response =
            protocol::parse(&protocol::read_frame(&mut self.stdout, DEFAULT_MAX_FRAME_BYTES).await?)?;
        if response.id != self.next_id {
            bail!("wrong id");
        }
        response.ok.context("an ok answer")
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn build(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let binary = dir.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/probes/{name}.c"));
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .context("run gcc")?;
    if !status.success() {
        bail!("compile {}", source.display());
    }
    Ok(binary)
}

/// (p50, p99)
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

fn show(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.1} µs")
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}
