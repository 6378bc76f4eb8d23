//! Projections through the real `hapnd` binary over HTTP (issue 6's benchmark), in one run:
//!
//! 1. the mailbox projection (`tests/projections/code/mailbox.cs`, 1,000 mailboxes) deployed after
//!    100,000 events: the time from the upload to the version being active (compile and replay), and the replay
//!    alone (from the version's creation to its activation);
//! 2. the same code under another name deployed after 1,000,000 events: replay throughput end to end, from the
//!    store through the jailed worker to committed states, against the ceiling: the same `ResolveKey` and `Apply`
//!    in a plain in-process C# loop over the same events (`dotnet-host/bench/Hapnd.Bench`, jailed), best of
//!    [`CEILING_ROUNDS`] rounds, run after the replay;
//! 3. state queries from [`QUERY_CLIENTS`] clients before a redeploy of the 1,000,000-event projection and during
//!    its hot swap (from the upload until the new version is active): p50/p99, and every answer must be a 200.
//!
//! `cargo bench -p hapnd-server --bench projections` (as root: user code runs in the real jail). Settings
//! (environment): `HAPND_BENCH_EVENTS` [1000000], `HAPND_BENCH_SMALL_EVENTS` [100000]. Every state the server
//! serves at the end is checked against the ceiling's. Targets: ≥ 50,000 events/s end to end and ≥ 25% of the
//! ceiling; the run prints a verdict for each.

#[path = "../../tests/shared/dotnet_build.rs"]
mod dotnet_build;
#[path = "shared/http.rs"]
mod http;
#[path = "shared/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hapnd_executor::{Sandbox, SandboxConfig, Worker, WorkerConfig};
use hapnd_server::runtime::DotnetHost;
use hdrhistogram::Histogram;
use http::{Client, Target, get};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use server::Server;

const MAILBOX: &str = include_str!("../../tests/projections/code/mailbox.cs");
const MAILBOX_V2: &str = include_str!("../../tests/projections/code/mailbox_v2.cs");
const MAILBOXES: u64 = 1_000;
/// Events per append while loading the log.
const LOAD_BATCH: u64 = 1_000;
const LOAD_CLIENTS: usize = 8;
const QUERY_CLIENTS: usize = 4;
/// Queries per second per client: a steady load, as an application's readers make, rather than as many as the
/// clients can send (which would take the replay's CPU and measure the machine, not the swap).
const QUERY_RATE: f64 = 250.0;
const CEILING_ROUNDS: u64 = 5;
const DEADLINE: Duration = Duration::from_secs(600);
/// The pause between loading the log and deploying.
const SETTLE: Duration = Duration::from_secs(5);
const TARGET_EVENTS_PER_SECOND: f64 = 50_000.0;
const TARGET_OF_CEILING: f64 = 0.25;

fn main() -> ExitCode {
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match std::env::var(name) {
            Err(_) => Ok(default),
            Ok(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}={text:?} is not a positive number")),
        }
    };
    let settings = match (
        number("HAPND_BENCH_EVENTS", 1_000_000),
        number("HAPND_BENCH_SMALL_EVENTS", 100_000),
    ) {
        (Ok(events), Ok(small)) if small <= events => Settings { events, small },
        (Ok(_), Ok(_)) => {
            eprintln!("projections bench: HAPND_BENCH_SMALL_EVENTS must not exceed HAPND_BENCH_EVENTS");
            return ExitCode::from(2);
        }
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("projections bench: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("projections bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    events: u64,
    small: u64,
}

fn run(settings: &Settings) -> anyhow::Result<bool> {
    let dotnet_host = dotnet_build::dotnet_host_build();
    let server = Server::start(&[OsStr::new("--dotnet-host"), dotnet_host.as_os_str()])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the bench's runtime")?;
    let target = Arc::new(Target::new(server.addr, &server.key)?);
    let result = runtime.block_on(measure(&target, settings, dotnet_host, &server));
    drop(runtime);
    let result = result.map_err(|error| anyhow!("{error:#}\nthe server's log:\n{}", server.log_tail()));
    server.stop()?;
    result
}

struct Deployed {
    projection_id: String,
    /// From the upload to active (compile included).
    wall: Duration,
    /// From the version's creation (the compile done) to active: the replay.
    replay: Duration,
}

async fn measure(
    target: &Arc<Target>,
    settings: &Settings,
    dotnet_host: &std::path::Path,
    server: &Server,
) -> anyhow::Result<bool> {
    eprintln!("loading {} events", settings.small);
    let load_started = Instant::now();
    load(target, 0, settings.small).await?;
    let mut loading = load_started.elapsed();
    eprintln!("deploying after {} events", settings.small);
    let small = deploy(target, &named(MAILBOX, "bench-small"), settings.small).await?;

    eprintln!("loading up to {} events", settings.events);
    let load_started = Instant::now();
    load(target, settings.small, settings.events).await?;
    loading += load_started.elapsed();
    let load_rate = settings.events as f64 / loading.as_secs_f64();
    // The store checkpoints the load's WAL into the shard in the background for a few seconds: the replay is
    // measured on a quiet server, as a deploy would usually meet it (the redeploy below meets query load).
    tokio::time::sleep(SETTLE).await;
    eprintln!("deploying after {} events", settings.events);
    let large = deploy(target, &named(MAILBOX, "bench-large"), settings.events).await?;

    // Queries before the redeploy, then during its hot swap.
    let keys: Vec<String> = (0..MAILBOXES).map(|m| format!("mbx-{m}")).collect();
    let before = query_while(target, &large.projection_id, &keys, Duration::from_secs(3)).await?;
    let (during, swapped) = {
        let done = Arc::new(AtomicBool::new(false));
        let queries = tokio::spawn(query_until(
            target.clone(),
            large.projection_id.clone(),
            keys.clone(),
            done.clone(),
        ));
        let swapped = deploy(target, &named(MAILBOX_V2, "bench-large"), settings.events).await;
        done.store(true, Ordering::Release);
        let during = queries.await.context("the query clients panicked")??;
        (during, swapped?)
    };
    if swapped.projection_id != large.projection_id {
        bail!(
            "the redeploy made a new projection: {} vs {}",
            swapped.projection_id,
            large.projection_id
        );
    }

    eprintln!("running the ceiling");
    let events = export_log(target, settings.events).await?;
    let dll = artifact_dll(server, "bench-large")?;
    let ceiling = ceiling(dotnet_host, &dll, &events).await?;
    // The active version now is the redeployed one (v2 adds `read` and `version`): compared on v1's fields.
    let served = served_states(target, &large.projection_id, &keys).await;
    let checked = check_states(&ceiling.states, &served);

    let replay_rate = settings.events as f64 / large.replay.as_secs_f64();
    let of_ceiling = replay_rate / ceiling.events_per_second;
    println!(
        "hapnd projections bench: the mailbox projection ({MAILBOXES} keys), durability full, 2 CPUs shared by server, \
         workers and load generator"
    );
    println!(
        "{:<58} {:>9} {:>10} {:>12} {:>10}",
        "case", "events", "seconds", "events/s", "of ceiling"
    );
    let row = |name: &str, events: u64, seconds: f64, share: Option<f64>| {
        let rate = events as f64 / seconds;
        println!(
            "{name:<58} {events:>9} {seconds:>10.2} {rate:>12.0} {:>10}",
            share.map_or("-".to_owned(), |s| format!("{:.0}%", s * 100.0))
        );
    };
    row(
        "replay end to end (version created -> active)",
        settings.events,
        large.replay.as_secs_f64(),
        Some(of_ceiling),
    );
    row(
        "ceiling: ResolveKey + Apply in a plain loop (jailed)",
        settings.events,
        settings.events as f64 / ceiling.events_per_second,
        Some(1.0),
    );
    row(
        "deploy -> active, compile included",
        settings.events,
        large.wall.as_secs_f64(),
        None,
    );
    row(
        "small log: replay (version created -> active)",
        settings.small,
        small.replay.as_secs_f64(),
        None,
    );
    row(
        "small log: deploy -> active, compile included",
        settings.small,
        small.wall.as_secs_f64(),
        None,
    );
    row(
        "redeploy (hot swap): deploy -> active",
        settings.events,
        swapped.wall.as_secs_f64(),
        None,
    );
    println!(
        "loading the log over HTTP: {load_rate:.0} events/s ({LOAD_CLIENTS} clients, {LOAD_BATCH} events per append)"
    );
    for (name, queries) in [("before the redeploy", &before), ("during the hot swap", &during)] {
        println!(
            "queries {name}: {} ({:.0}/s from {QUERY_CLIENTS} clients), p50 {}, p99 {}, max {}, answers other than 200: {}",
            queries.latency.len(),
            queries.latency.len() as f64 / queries.window.as_secs_f64(),
            micros(queries.latency.value_at_quantile(0.5)),
            micros(queries.latency.value_at_quantile(0.99)),
            micros(queries.latency.max()),
            queries.not_ok,
        );
    }
    println!("the server's account of each catch-up:");
    for line in server
        .log()
        .lines()
        .filter(|line| line.contains("a projection version is active"))
    {
        println!("  {}", line.trim());
    }
    let met = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!("targets:");
    println!(
        "  replay >= {TARGET_EVENTS_PER_SECOND:.0} events/s end to end: {replay_rate:.0}  {}",
        met(replay_rate >= TARGET_EVENTS_PER_SECOND)
    );
    println!(
        "  replay >= {:.0}% of the ceiling: {:.0}%  {}",
        TARGET_OF_CEILING * 100.0,
        of_ceiling * 100.0,
        met(of_ceiling >= TARGET_OF_CEILING)
    );
    let queries_ok = before.not_ok == 0 && during.not_ok == 0;
    match &checked {
        Ok(()) => println!(
            "correctness: the {} served states equal the ceiling's: ok",
            served.len()
        ),
        Err(problem) => println!("correctness: FAILED: {problem}"),
    }
    if !queries_ok {
        println!("correctness: FAILED: some queries were not answered 200");
    }
    Ok(checked.is_ok() && queries_ok)
}

/// The code with its `[ProjectionName]` replaced, so one run can deploy it as several projections.
fn named(code: &str, name: &str) -> String {
    code.replace(
        "[ProjectionName(\"mailbox\")]",
        &format!("[ProjectionName(\"{name}\")]"),
    )
}

/// Appends events `from..to` (positions `from + 1 ..= to`), [`LOAD_BATCH`] per append on its own aggregate.
async fn load(target: &Arc<Target>, from: u64, to: u64) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(from));
    let mut tasks = Vec::new();
    for _ in 0..LOAD_CLIENTS {
        let (target, next) = (target.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&target).await?;
            loop {
                let start = next.fetch_add(LOAD_BATCH, Ordering::AcqRel);
                if start >= to {
                    return anyhow::Ok(());
                }
                let end = (start + LOAD_BATCH).min(to);
                let events: Vec<Value> = (start..end)
                    .map(|n| {
                        let mailbox = format!("mbx-{}", n % MAILBOXES);
                        if n % 4 == 3 {
                            json!({"eventType": "EmailRead", "data": {"mailboxId": mailbox}})
                        } else {
                            json!({"eventType": "EmailReceived", "data": {"mailboxId": mailbox, "subject": "hello"}})
                        }
                    })
                    .collect();
                let body = Bytes::from(serde_json::to_vec(&json!({"events": events}))?);
                let (status, answer) = client
                    .send(Method::POST, &format!("/aggregates/email-{start}/events"), body)
                    .await
                    .context("append")?;
                if status != StatusCode::CREATED {
                    bail!("append: {status} {}", String::from_utf8_lossy(&answer));
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("a load client panicked")??;
    }
    Ok(())
}

/// Deploys `code` and waits until its version is active at `head`.
async fn deploy(target: &Arc<Target>, code: &str, head: u64) -> anyhow::Result<Deployed> {
    let started = Instant::now();
    let mut client = Client::connect(target).await?;
    let body = Bytes::from(serde_json::to_vec(&json!({"files": {"Mailbox.cs": code}}))?);
    let (status, answer) = client.send(Method::POST, "/projections", body).await?;
    if status != StatusCode::ACCEPTED {
        bail!("POST /projections: {status} {}", String::from_utf8_lossy(&answer));
    }
    let upload = json_of(&answer)?["uploadId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no uploadId"))?;
    let mut created: Option<Instant> = None;
    loop {
        let status = json_of(&get(target, &format!("/projections/{upload}/status")).await?)?;
        let now = Instant::now();
        match status["status"].as_str() {
            Some("compiling") => {}
            Some("catching_up") => {
                created.get_or_insert(now);
            }
            Some("active") if status["position"].as_u64().is_some_and(|p| p >= head) => {
                let projection_id = status["projectionId"].as_str().unwrap_or_default().to_owned();
                return Ok(Deployed {
                    projection_id,
                    wall: now - started,
                    replay: now - created.unwrap_or(now),
                });
            }
            Some("active") => {
                created.get_or_insert(now);
            }
            _ => bail!("the deploy failed: {status}"),
        }
        if started.elapsed() > DEADLINE {
            bail!("the deploy is not active after {DEADLINE:?}: {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Queries {
    latency: Histogram<u64>,
    window: Duration,
    not_ok: u64,
}

/// Queries random keys from [`QUERY_CLIENTS`] clients for `length`.
async fn query_while(
    target: &Arc<Target>,
    projection: &str,
    keys: &[String],
    length: Duration,
) -> anyhow::Result<Queries> {
    let done = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(query_until(
        target.clone(),
        projection.to_owned(),
        keys.to_vec(),
        done.clone(),
    ));
    tokio::time::sleep(length).await;
    done.store(true, Ordering::Release);
    task.await.context("the query clients panicked")?
}

async fn query_until(
    target: Arc<Target>,
    projection: String,
    keys: Vec<String>,
    done: Arc<AtomicBool>,
) -> anyhow::Result<Queries> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_index in 0..QUERY_CLIENTS {
        let (target, projection, keys, done) = (target.clone(), projection.clone(), keys.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&target).await?;
            let mut latency = Histogram::<u64>::new(3)?;
            let mut not_ok = 0;
            let mut n = client_index * 7919;
            let interval = Duration::from_secs_f64(1.0 / QUERY_RATE);
            let mut next = tokio::time::Instant::now();
            while !done.load(Ordering::Acquire) {
                tokio::time::sleep_until(next).await;
                next += interval;
                let key = &keys[n % keys.len()];
                n += 1;
                let path = format!("/projections/{projection}/state/{key}");
                let sent = Instant::now();
                let (status, _) = client.send(Method::GET, &path, Bytes::new()).await?;
                latency.saturating_record(sent.elapsed().as_micros() as u64);
                if status != StatusCode::OK {
                    not_ok += 1;
                }
            }
            anyhow::Ok((latency, not_ok))
        }));
    }
    let mut total = Queries {
        latency: Histogram::<u64>::new(3)?,
        window: Duration::ZERO,
        not_ok: 0,
    };
    for task in tasks {
        let (latency, not_ok) = task.await.context("a query client panicked")??;
        total.latency.add(latency)?;
        total.not_ok += not_ok;
    }
    total.window = started.elapsed();
    Ok(total)
}

/// The tenant's log as the HTTP API gives it, as one JSON array (the ceiling's input).
async fn export_log(target: &Arc<Target>, events: u64) -> anyhow::Result<Vec<u8>> {
    let mut client = Client::connect(target).await?;
    let mut out = Vec::with_capacity(events as usize * 300);
    out.push(b'[');
    let mut after = 0u64;
    let mut first = true;
    while after < events {
        let (status, body) = client
            .send(Method::GET, &format!("/events?after={after}&limit=1000"), Bytes::new())
            .await?;
        if status != StatusCode::OK {
            bail!("read the log: {status}");
        }
        let page = json_of(&body)?;
        let page_events = page["events"]
            .as_array()
            .ok_or_else(|| anyhow!("a page without events"))?;
        if page_events.is_empty() {
            bail!("the log ends at {after}, before {events}");
        }
        for event in page_events {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut out, event)?;
            after = event["globalPosition"].as_u64().unwrap_or(after + 1);
        }
    }
    out.push(b']');
    Ok(out)
}

/// The DLL the server compiled for `identity`, from its code registry.
fn artifact_dll(server: &Server, identity: &str) -> anyhow::Result<Vec<u8>> {
    let path = server.data_dir().join("code.db");
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", path.display()))?;
    conn.query_row(
        "SELECT dll FROM artifacts WHERE identity = ?1 ORDER BY created_at LIMIT 1",
        [identity],
        |row| row.get(0),
    )
    .context("read the artifact")
}

struct Ceiling {
    events_per_second: f64,
    states: BTreeMap<String, Value>,
}

/// The same code over the same events in a plain loop, in the workers' jail: the best of [`CEILING_ROUNDS`].
async fn ceiling(dotnet_host: &std::path::Path, dll: &[u8], events: &[u8]) -> anyhow::Result<Ceiling> {
    use std::os::unix::fs::PermissionsExt;
    let host = DotnetHost::from_build_artifacts(dotnet_host)?;
    let mut config = SandboxConfig::new(server::HAPND);
    config.cgroup_parent = "hapnd-bench".into();
    let sandbox = Arc::new(Sandbox::new(config)?);
    let dir = tempfile::Builder::new().prefix("hapnd-bench-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let dll_path = dir.path().join("artifact.dll");
    let events_path = dir.path().join("events.json");
    std::fs::write(&dll_path, dll)?;
    std::fs::write(&events_path, events)?;
    for path in [&dll_path, &events_path] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    let bench_dir = dotnet_host.join("bin/Hapnd.Bench/release");
    let mut spec = host.worker_spec(&[]);
    // A million events held as objects, and the parsed file: more than a worker's limit.
    const MEMORY: u64 = 4 << 30;
    spec.limits.memory_bytes = MEMORY;
    for (name, value) in &mut spec.env {
        if name == "DOTNET_GCHeapHardLimit" {
            *value = format!("{:x}", MEMORY / 4 * 3);
        }
    }
    spec.args = vec![
        bench_dir.join("Hapnd.Bench.dll").to_string_lossy().into_owned(),
        dll_path.to_string_lossy().into_owned(),
        "MailboxProjection".into(),
        events_path.to_string_lossy().into_owned(),
    ];
    spec.read_only.extend([bench_dir, dir.path().to_owned()]);
    spec.limits.request_timeout = Duration::from_secs(300);
    let worker_config = WorkerConfig {
        handshake_timeout: Duration::from_secs(300),
        ..WorkerConfig::default()
    };
    let mut worker = Worker::start(&sandbox, spec, worker_config)
        .await
        .map_err(|e| anyhow!("start the ceiling: {e}"))?;
    let answer = worker
        .call(&json!({"cmd": "fold", "rounds": CEILING_ROUNDS}))
        .await
        .map_err(|e| anyhow!("the ceiling failed: {e}"))?
        .map_err(|e| anyhow!("the ceiling failed: {e:?}"))?;
    let answer: Value = serde_json::from_str(answer.get())?;
    let states: BTreeMap<String, Value> = serde_json::from_value(answer["state"].clone())?;
    Ok(Ceiling {
        events_per_second: answer["eventsPerSecond"].as_f64().unwrap_or(0.0),
        states,
    })
}

/// Every key's state as the server serves it now.
async fn served_states(target: &Arc<Target>, projection: &str, keys: &[String]) -> BTreeMap<String, Value> {
    let mut served = BTreeMap::new();
    for key in keys {
        if let Ok(body) = get(target, &format!("/projections/{projection}/state/{key}")).await
            && let Ok(body) = json_of(&body)
        {
            served.insert(key.clone(), body["state"].clone());
        }
    }
    served
}

/// The served states (of the redeployed v2) agree with the ceiling's (v1) on every field v1 has.
fn check_states(ceiling: &BTreeMap<String, Value>, served: &BTreeMap<String, Value>) -> Result<(), String> {
    if ceiling.len() != served.len() {
        return Err(format!(
            "{} keys served, {} in the ceiling",
            served.len(),
            ceiling.len()
        ));
    }
    for (key, expected) in ceiling {
        let Some(got) = served.get(key) else {
            return Err(format!("{key} is not served"));
        };
        let fields = expected
            .as_object()
            .ok_or_else(|| format!("{key}: {expected} is not an object"))?;
        for (field, value) in fields {
            if &got[field] != value {
                return Err(format!("{key}: served {got}, the ceiling has {expected}"));
            }
        }
    }
    Ok(())
}

fn micros(us: u64) -> String {
    if us >= 1_000 {
        format!("{:.2} ms", us as f64 / 1_000.0)
    } else {
        format!("{us} µs")
    }
}

fn json_of(body: &[u8]) -> anyhow::Result<Value> {
    serde_json::from_slice(body).with_context(|| format!("not JSON: {}", String::from_utf8_lossy(body)))
}
