//! The C# side's benchmark, everything jailed (`cargo bench -p hapnd-server --bench dotnet`, as root): compile time of
//! the issue's reducer (cold: a new compiler process; warm: the same process again), the round trip of one `apply`
//! through a warm jailed worker, and replay through the worker (batches pipelined into a session that keeps the
//! state in the worker) against the ceiling, the same `Apply` called in a plain loop in one jailed process
//! (`dotnet-host/bench/Hapnd.Bench`), in one run: the two take turns, so both are measured under the same load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hapnd_executor::{PoolConfig, Sandbox, SandboxConfig, Worker, WorkerConfig};
use hapnd_policy::signing::ArtifactSigner;
use hapnd_server::runtime::protocol::{BatchStep, EncodedRows, WorkerEvent};
use hapnd_server::runtime::workers::WorkerKey;
use hapnd_server::runtime::{ArtifactWorkers, Compiler, DotnetHost};
use hdrhistogram::Histogram;
use serde_json::value::RawValue;

const HAPND: &str = env!("CARGO_BIN_EXE_hapnd");
const COLD_COMPILES: usize = 3;
const WORKER_STARTS: usize = 5;
const WARM_COMPILES: usize = 30;
const APPLIES: usize = 5_000;
const REPLAY_EVENTS: usize = 100_000;
const BATCH: usize = 4_000;
/// Turns of the replay (each the whole stream) and of the ceiling (each this many rounds), alternating.
const REPLAY_ROUNDS: usize = 10;
const CEILING_ROUNDS_PER_TURN: usize = 6;

/// The issue's example, the same file the legitimate-program tests run.
const REDUCER: &str = include_str!("../../tests/legit/order_reducer.cs");

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dotnet bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let repo = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))?;
    let artifacts = repo.join("target/dotnet-host-bench");
    std::fs::create_dir_all(&artifacts)?;
    let artifacts = std::fs::canonicalize(&artifacts)?;
    let status = Command::new("dotnet")
        .args(["build", "-c", "Release", "--nologo", "-v", "quiet", "--artifacts-path"])
        .arg(&artifacts)
        .arg(repo.join("dotnet-host/Hapnd.slnx"))
        .status()?;
    anyhow::ensure!(status.success(), "dotnet-host builds");
    let host = DotnetHost::from_build_artifacts(&artifacts)?;
    let mut config = SandboxConfig::new(HAPND);
    config.cgroup_parent = "hapnd-bench".into();
    let sandbox = Arc::new(Sandbox::new(config)?);
    let signer = Arc::new(ArtifactSigner::from_secret_bytes(&[0x42; 32])?);
    let files = BTreeMap::from([("OrderReducer.cs".to_owned(), REDUCER.to_owned())]);

    // Cold: a new compiler process each time (jail, runtime start, Roslyn's first compile), then its first answer.
    let mut cold = Vec::new();
    for _ in 0..COLD_COMPILES {
        let compiler = Compiler::new(sandbox.clone(), &host, signer.clone(), 0);
        let started = Instant::now();
        compiler
            .compile(&files)
            .await?
            .map_err(|r| anyhow::anyhow!("{:?}", r.diagnostics))?;
        cold.push(started.elapsed());
    }
    // Warm: the same compiler process again and again.
    let compiler = Compiler::new(sandbox.clone(), &host, signer.clone(), 1);
    compiler.prewarm().await;
    let mut warm = histogram();
    let mut artifact = None;
    for _ in 0..WARM_COMPILES {
        let started = Instant::now();
        let compiled = compiler
            .compile(&files)
            .await?
            .map_err(|r| anyhow::anyhow!("{:?}", r.diagnostics))?;
        record(&mut warm, started.elapsed());
        artifact = Some(compiled.artifact);
    }
    let artifact = artifact.expect("compiled");

    // Apply: one event per round trip, as an append does, through a warm jailed worker.
    let workers = ArtifactWorkers::new(
        sandbox.clone(),
        &host,
        signer.public_key(),
        PoolConfig {
            ready_per_key: 0,
            max_per_key: 1,
            ..PoolConfig::default()
        },
    );
    workers.register(artifact.clone())?;
    let key = WorkerKey {
        scope: "bench".into(),
        artifact: artifact.address.clone(),
    };
    workers.prewarm(&key).await;
    // Start-up: a new worker (jail, .NET runtime, hello) loading the artifact (signature check, load context).
    let starter = ArtifactWorkers::new(sandbox.clone(), &host, signer.public_key(), PoolConfig::default());
    starter.register(artifact.clone())?;
    let mut starts = Vec::new();
    for scope in 0..WORKER_STARTS {
        let fresh = WorkerKey {
            scope: format!("start-{scope}"),
            artifact: artifact.address.clone(),
        };
        let started = Instant::now();
        starter.prewarm(&fresh).await;
        starts.push(started.elapsed());
    }
    starts.sort();
    drop(starter);
    let events = Arc::new(order_events(REPLAY_EVENTS));
    let wire: Vec<WorkerEvent> = events.iter().map(Event::wire).collect();
    let mut apply = histogram();
    let mut state: Option<Box<RawValue>> = None;
    for event in wire.iter().cycle().take(APPLIES + 500).enumerate() {
        let started = Instant::now();
        let next = workers.apply(&key, state.as_deref(), event.1).await?;
        if event.0 >= 500 {
            record(&mut apply, started.elapsed());
        }
        state = Some(next);
    }

    // Replay: the whole stream in batches through one worker that keeps the state between them (a replay
    // session), pipelined: the next batch is sent while the worker runs the current one, so it finds it waiting.
    // As a replay reading the store would, the batch after that is read and its rows encoded on another thread
    // meanwhile.
    let encode_on_the_side = |range: std::ops::Range<usize>| {
        let events = events.clone();
        tokio::task::spawn_blocking(move || {
            let wire: Vec<WorkerEvent> = events[range].iter().map(Event::wire).collect();
            let steps: Vec<BatchStep> = wire.iter().map(|event| BatchStep { key: "", event }).collect();
            EncodedRows::encode(&steps)
        })
    };
    let batches: Vec<std::ops::Range<usize>> = (0..REPLAY_EVENTS)
        .step_by(BATCH)
        .map(|start| start..(start + BATCH).min(REPLAY_EVENTS))
        .collect();
    // The ceiling: the same Apply in a plain loop in one jailed process, which takes turns with the replay (a round
    // of one, then a few of the other), so both see the same machine: it is shared, and its load comes and goes.
    let (mut ceiling, _ceiling_files) = start_ceiling(&sandbox, &host, &artifacts, &artifact.dll, &events).await?;
    let mut ceiling_rate = 0.0_f64;
    let mut ceiling_state = String::new();
    let mut best_batched = Duration::MAX;
    let mut batched_state = String::new();
    let mut inside = BTreeMap::<String, u64>::new();
    let mut waited_for_rows = Duration::ZERO;
    let mut best_round_trips = Duration::MAX;
    let mut inside_round_trips = BTreeMap::<String, u64>::new();
    for _ in 0..REPLAY_ROUNDS {
        let answer = ceiling
            .call(&serde_json::json!({ "cmd": "fold", "rounds": CEILING_ROUNDS_PER_TURN }))
            .await?
            .map_err(|e| anyhow::anyhow!("the ceiling failed: {e:?}"))?;
        let answer: serde_json::Value = serde_json::from_str(answer.get())?;
        ceiling_rate = ceiling_rate.max(answer["eventsPerSecond"].as_f64().unwrap_or(0.0));
        ceiling_state = answer["state"].to_string();

        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let mut replay = workers.replay(&key, BTreeMap::new()).await?;
        let mut next = Some(encode_on_the_side(batches[0].clone()));
        for index in 0..batches.len() {
            let waiting = Instant::now();
            let rows = next.take().expect("encoded ahead").await??;
            waited += waiting.elapsed();
            next = batches.get(index + 1).cloned().map(encode_on_the_side);
            replay.push(&rows).await?;
        }
        let mut outcome = replay.finish().await?;
        let took = started.elapsed();
        anyhow::ensure!(outcome.events == REPLAY_EVENTS as u64, "every event was replayed");
        if took < best_batched {
            best_batched = took;
            inside = std::mem::take(&mut outcome.timings_us);
            waited_for_rows = waited;
        }
        batched_state = outcome
            .states
            .remove("")
            .map(|s| s.get().to_owned())
            .unwrap_or_default();

        // The same replay one round trip per batch (`apply_batch`: the state sent with each batch and back), as
        // replays ran before sessions, for comparison in the same run.
        let started = Instant::now();
        let mut state: Option<Box<RawValue>> = None;
        let mut round = BTreeMap::<String, u64>::new();
        let mut next = Some(encode_on_the_side(batches[0].clone()));
        for index in 0..batches.len() {
            let rows = next.take().expect("encoded ahead").await??;
            next = batches.get(index + 1).cloned().map(encode_on_the_side);
            let states = BTreeMap::from([("", state.as_deref())]);
            let mut out = workers.apply_batch(&key, states, &rows).await?;
            for (part, us) in out.timings_us {
                *round.entry(part).or_default() += us;
            }
            state = out.states.remove("");
        }
        let took = started.elapsed();
        if took < best_round_trips {
            best_round_trips = took;
            inside_round_trips = round;
        }
        anyhow::ensure!(
            state.as_deref().map(RawValue::get) == Some(batched_state.as_str()),
            "batch by batch and the session disagree"
        );
    }
    let batched_rate = REPLAY_EVENTS as f64 / best_batched.as_secs_f64();
    let round_trips_rate = REPLAY_EVENTS as f64 / best_round_trips.as_secs_f64();

    // The server's share of a batch: serializing the request (what the worker then parses).
    let serialize_started = Instant::now();
    let mut request_bytes = 0;
    let mut frame = Vec::new();
    for chunk in wire.chunks(BATCH) {
        let steps: Vec<BatchStep> = chunk.iter().map(|event| BatchStep { key: "", event }).collect();
        let rows = EncodedRows::encode(&steps)?;
        let request = hapnd_server::runtime::protocol::SessionBatchRequest { events: &rows };
        hapnd_executor::worker::protocol::encode_request(&mut frame, 1, &request)?;
        request_bytes += frame.len();
    }
    let serialize_ns = serialize_started.elapsed().as_secs_f64() * 1e9 / REPLAY_EVENTS as f64;

    ceiling.shutdown().await;
    anyhow::ensure!(
        serde_json::from_str::<serde_json::Value>(&ceiling_state)?
            == serde_json::from_str::<serde_json::Value>(&batched_state)?,
        "the ceiling and the worker disagree: {ceiling_state} vs {batched_state}"
    );

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let cold_p50 = {
        let mut sorted = cold.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    println!(
        "hapnd dotnet bench: the issue's OrderReducer, {COLD_COMPILES} cold and {WARM_COMPILES} warm compiles, {APPLIES} applies, replay of {REPLAY_EVENTS} events in batches of {BATCH}; all jailed"
    );
    println!("{:<34} {:>12} {:>12}  target", "", "p50", "p99");
    println!(
        "{:<34} {:>9.1} ms {:>9.1} ms  (max {:.1} ms)",
        "cold compile (new compiler)",
        ms(cold_p50),
        ms(*cold.iter().max().expect("cold")),
        ms(*cold.iter().max().expect("cold"))
    );
    println!(
        "{:<34} {:>9.1} ms {:>9.1} ms  (max of {WORKER_STARTS})",
        "worker start, artifact loaded",
        ms(starts[starts.len() / 2]),
        ms(*starts.last().expect("starts"))
    );
    let warm_p50 = warm.value_at_quantile(0.5) as f64 / 1000.0;
    println!(
        "{:<34} {:>9.1} ms {:>9.1} ms  ≤ 100 ms p50: {}",
        "warm compile",
        warm_p50,
        warm.value_at_quantile(0.99) as f64 / 1000.0,
        verdict(warm_p50 <= 100.0)
    );
    let apply_p50 = apply.value_at_quantile(0.5) as f64;
    println!(
        "{:<34} {:>9.1} µs {:>9.1} µs  ≤ 200 µs p50: {}",
        "warm apply round trip",
        apply_p50,
        apply.value_at_quantile(0.99) as f64,
        verdict(apply_p50 <= 200.0)
    );
    println!("{:<34} {:>12} {:>12}", "", "events/s", "of ceiling");
    println!(
        "{:<34} {:>12.0} {:>11.0}%  ≥ 30%: {}",
        "replay through the worker",
        batched_rate,
        batched_rate / ceiling_rate * 100.0,
        verdict(batched_rate / ceiling_rate >= 0.30)
    );
    println!(
        "{:<34} {:>12.0} {:>11.0}%",
        "  batch by batch, state resent",
        round_trips_rate,
        round_trips_rate / ceiling_rate * 100.0
    );
    println!(
        "{:<34} {:>12.0} {:>11}%",
        "ceiling: in-process loop (jailed)", ceiling_rate, 100
    );
    let per_event = |us: u64| us as f64 * 1000.0 / REPLAY_EVENTS as f64;
    let breakdown = |timings: &BTreeMap<String, u64>, took: Duration| {
        let part = |name: &str| per_event(timings.get(name).copied().unwrap_or(0));
        let total_ns = took.as_secs_f64() * 1e9 / REPLAY_EVENTS as f64;
        let worker_parts = [
            "read",
            "apply",
            "write",
            "waitBefore",
            "transfer",
            "sendBefore",
            "gapBefore",
        ];
        let worker_ns: f64 = worker_parts.iter().map(|name| part(name)).sum();
        format!(
            "{total_ns:.0} ns; in the worker {:.0} read, {:.0} Apply, {:.0} write, {:.0} waiting for and {:.0} receiving the batch, {:.0} answering, {:.0} between requests; {:.0} outside the worker",
            part("read"),
            part("apply"),
            part("write"),
            part("waitBefore"),
            part("transfer"),
            part("sendBefore"),
            part("gapBefore"),
            (total_ns - worker_ns).max(0.0),
        )
    };
    println!(
        "replay per event: {} (start, end, scheduling); the supervisor waited {:.0} for rows, encoded ({} bytes) in {serialize_ns:.0} on another thread and sent while the worker runs the batch before ({} in flight, the state kept in the worker)",
        breakdown(&inside, best_batched),
        waited_for_rows.as_secs_f64() * 1e9 / REPLAY_EVENTS as f64,
        request_bytes / REPLAY_EVENTS,
        hapnd_server::runtime::workers::REPLAY_DEPTH,
    );
    println!(
        "batch by batch per event: {} (the supervisor's turn between batches)",
        breakdown(&inside_round_trips, best_round_trips),
    );
    Ok(())
}

/// Starts the ceiling (`dotnet-host/bench/Hapnd.Bench`) in a jail over the artifact and the events, written to a
/// folder the jail can read (kept until the returned guard is dropped).
async fn start_ceiling(
    sandbox: &Arc<Sandbox>,
    host: &DotnetHost,
    artifacts: &Path,
    dll: &[u8],
    events: &[Event],
) -> anyhow::Result<(Worker, tempfile::TempDir)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("hapnd-bench-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let dll_path = dir.path().join("artifact.dll");
    std::fs::write(&dll_path, dll)?;
    let events_path = dir.path().join("events.json");
    let wire: Vec<WorkerEvent> = events.iter().map(Event::wire).collect();
    std::fs::write(&events_path, serde_json::to_vec(&wire)?)?;
    for path in [&dll_path, &events_path] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    let bench_dir: PathBuf = artifacts.join("bin/Hapnd.Bench/release");
    let mut spec = host.worker_spec(&[]);
    spec.args = vec![
        bench_dir.join("Hapnd.Bench.dll").to_string_lossy().into_owned(),
        dll_path.to_string_lossy().into_owned(),
        "OrderReducer".into(),
        events_path.to_string_lossy().into_owned(),
    ];
    spec.read_only.extend([bench_dir, dir.path().to_owned()]);
    spec.limits.request_timeout = Duration::from_secs(120);
    let config = WorkerConfig {
        // It reads and parses the events before its hello.
        handshake_timeout: Duration::from_secs(60),
        ..WorkerConfig::default()
    };
    let worker = Worker::start(sandbox, spec, config)
        .await
        .map_err(|e| anyhow::anyhow!("start the ceiling: {e}"))?;
    Ok((worker, dir))
}

struct Event {
    id: String,
    aggregate_id: String,
    event_type: &'static str,
    version: u64,
    data: Box<RawValue>,
}

impl Event {
    fn wire(&self) -> WorkerEvent<'_> {
        WorkerEvent {
            event_id: &self.id,
            aggregate_id: &self.aggregate_id,
            aggregate_type: "order",
            event_type: self.event_type,
            version: self.version,
            global_position: self.version,
            timestamp: time::macros::datetime!(2026-01-01 00:00:00 UTC),
            data: &self.data,
            metadata: None,
            correlation_id: None,
            causation_id: None,
        }
    }
}

/// One order: placed, then items added.
fn order_events(count: usize) -> Vec<Event> {
    (1..=count as u64)
        .map(|version| {
            let (event_type, data) = if version == 1 {
                ("OrderPlaced", r#"{"customerId":"customer-42"}"#.to_owned())
            } else {
                ("ItemAdded", format!(r#"{{"item":"sku-{version}","price":1.25}}"#))
            };
            Event {
                id: format!("00000000-0000-4000-8000-{version:012}"),
                aggregate_id: "order_1".into(),
                event_type,
                version,
                data: RawValue::from_string(data).expect("JSON"),
            }
        })
        .collect()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")
}

/// Records in microseconds.
fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let _ = histogram.record(elapsed.as_micros().max(1) as u64);
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
