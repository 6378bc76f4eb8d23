//! Append throughput and latency of the real `hapnd` binary over HTTP, with a raw-SQLite baseline from the same run.
//!
//! `cargo bench -p hapnd-server --bench append [-- OPTIONS]`; see [`USAGE`] for the options.
//!
//! Each row of the table starts `hapnd serve` on a fresh data dir and `127.0.0.1:0`, opens one keep-alive HTTP/1.1
//! connection per client (hyper's low-level client with TCP_NODELAY, because the load generator shares the CPUs with
//! the server and must cost it as little as possible), warms up, then measures for a fixed time or a fixed number of
//! appends. A request's latency runs from sending it to the last byte of its answer and goes into an HDR histogram;
//! every status is checked, and at the end the tenant's head position must equal the events the clients saw stored.
//! Every row runs `--rounds` times, round by round, so that each row meets the machine at several minutes; issue 2's
//! targets (scenario a at 32 clients, durability full) are judged on the medians of its rounds.
//!
//! The baseline is the storage ceiling: the rows the shard writer stores for scenario a, written by the same
//! statements on a shard file opened exactly as the server opens one (schema, pragmas, `synchronous`), with as many
//! requests per transaction as the server's group commit reached in that row of scenario a and the same aggregate
//! ids, from one thread, without HTTP; the server's background WAL checkpoints and rewinds run as they do in the
//! server. It runs right after its row, because the fsync time of a shared disk drifts from minute to minute.

#[path = "shared/http.rs"]
mod http;
#[path = "shared/median.rs"]
mod median;
#[path = "shared/server.rs"]
mod server;

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hapnd_server::catalog::TenantId;
use hapnd_server::db::Durability;
use hapnd_server::store::sqlite::schema::event_key;
use hapnd_server::store::sqlite::{
    CheckpointedShard, Checkpointer, DEFAULT_WAL_REWIND_FRAMES, WalRewind, open_shard_writer,
};
use hdrhistogram::Histogram;
use http::{Client, Target, get};
use hyper::{Method, StatusCode};
use median::median;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;
use server::Server;

const USAGE: &str = "\
usage: cargo bench -p hapnd-server --bench append [-- OPTIONS]
  --clients 32,1        concurrent clients, one connection each; one row per value [32,1]
  --seconds S           measure each row for S seconds [3]
  --rounds R            run every row R times in turn; the targets are judged on the medians [3]
  --requests N          measure each row for N appends instead (c: N successful appends)
  --warmup S            warm-up before measuring, in seconds [1]
  --scenarios a,b,c     a: one event per request, b: 10 events per request, c: one hot aggregate,
                        none: only the baseline [a,b,c]
  --durability D        full or normal, for the server and the baseline [full]
  --gen-threads T       load generator runtime: 0 = current-thread, T > 0 = multi-thread with T workers [0]
  --baseline-batches B  instead, baselines at these requests per transaction (e.g. 1,16,32) after all rows,
                        with the ids of the most clients [one after each row of a: its group size and ids]
  --no-baseline-checkpoints  the baseline without the server's background WAL checkpoints
  --no-baseline         skip the raw rusqlite baseline";

/// The one event of every append; the server stores `data` as this text.
const EVENT_TYPE: &str = "OrderPlaced";
const EVENT_DATA: &str = r#"{"customerId":"c-1","total":12.5}"#;
const BATCH_EVENTS: usize = 10;
const HOT_AGGREGATE: &str = "order_hot";
/// Tenant number of the baseline's rows; the server's default tenant is the first one.
const BASELINE_TENANT: TenantId = TenantId(1);
/// Targets of issue 2, for scenario a at this many clients with durability full.
const TARGET_CLIENTS: usize = 32;
const TARGET_EVENTS_PER_S: f64 = 20_000.0;
const TARGET_P99: Duration = Duration::from_millis(10);
const TARGET_SHARE_OF_BASELINE: f64 = 50.0;

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("append bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One line of the table.
enum Row {
    Server {
        scenario: Scenario,
        clients: usize,
        round: usize,
        measured: Box<Measured>,
        /// Scenario a: the share of its own baseline (run right after it) that it reached, in percent.
        share: Option<f64>,
    },
    Baseline {
        baseline: Baseline,
        /// The round of the row it follows, or `None` for the extra baselines of `--baseline-batches`.
        round: Option<usize>,
    },
}

/// Runs every row and prints the table; `Ok(false)` when some request failed.
fn run(options: &Options) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    // Round by round, every row once a round: a row's rounds meet the machine at different minutes.
    let runs = (1..=options.rounds).flat_map(|round| {
        options
            .scenarios
            .iter()
            .flat_map(move |&scenario| options.clients.iter().map(move |&clients| (scenario, clients, round)))
    });
    for (scenario, clients, round) in runs {
        eprintln!("running {} with {clients} client(s), round {round}", scenario.label());
        let measured = measure_server(options, scenario, clients)?;
        if measured.errors > 0 || !measured.problems.is_empty() {
            failures.push(format!(
                "{} with {clients} client(s), round {round}: {} failed request(s){}",
                scenario.label(),
                measured.errors,
                measured
                    .problems
                    .iter()
                    .fold(String::new(), |all, problem| all + "\n    " + problem)
            ));
        }
        // Each row of a gets its baseline right away: the storage ceiling at the group size it reached, with the
        // aggregate ids its clients sent. Right away, because this disk's fsync time drifts within a minute.
        let shape = match measured.commits {
            Some(commits)
                if scenario == Scenario::Single && options.baseline && options.baseline_batches.is_empty() =>
            {
                Some(batch_of(commits.mean_group))
            }
            _ => None,
        };
        let baseline = shape.map(|batch| run_baseline(options, batch, clients)).transpose()?;
        let share = baseline.as_ref().and_then(|b| share_of(&measured, b));
        rows.push(Row::Server {
            scenario,
            clients,
            round,
            measured: Box::new(measured),
            share,
        });
        if let Some(baseline) = baseline {
            rows.push(Row::Baseline {
                baseline,
                round: Some(round),
            });
        }
    }
    let mut extra = if options.baseline {
        options.baseline_batches.clone()
    } else {
        Vec::new()
    };
    if options.baseline && options.scenarios.is_empty() && extra.is_empty() {
        extra.push(1);
    }
    let widest = options.clients.iter().copied().max().unwrap_or(1);
    for batch in extra {
        rows.push(Row::Baseline {
            baseline: run_baseline(options, batch, widest)?,
            round: None,
        });
    }

    print_table(options, &rows, started.elapsed());
    if failures.is_empty() {
        return Ok(true);
    }
    eprintln!();
    eprintln!("!!!!!!!! THE RUN HAD FAILURES; ITS NUMBERS ARE NOT VALID !!!!!!!!");
    for failure in &failures {
        eprintln!("  {failure}");
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// a: one event per request, each request a new aggregate.
    Single,
    /// b: ten events per request, each request a new aggregate.
    Batch,
    /// c: every client appends to one aggregate with `expectedVersion`, retrying on 409.
    Hot,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Single => "a single event",
            Scenario::Batch => "b batch of 10",
            Scenario::Hot => "c hot aggregate",
        }
    }

    fn events_per_request(self) -> u64 {
        match self {
            Scenario::Batch => BATCH_EVENTS as u64,
            Scenario::Single | Scenario::Hot => 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Seconds(Duration),
    Appends(i64),
}

#[derive(Debug)]
struct Options {
    clients: Vec<usize>,
    scenarios: Vec<Scenario>,
    stop: Stop,
    warmup: Duration,
    durability: Durability,
    gen_threads: usize,
    baseline: bool,
    /// Requests per baseline transaction; empty = the group sizes scenario a reached.
    baseline_batches: Vec<usize>,
    /// Whether the baseline runs the server's background WAL checkpoints too.
    baseline_checkpoints: bool,
    /// Times each row runs, in turn with the others of its scenario.
    rounds: usize,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            clients: vec![32, 1],
            scenarios: vec![Scenario::Single, Scenario::Batch, Scenario::Hot],
            stop: Stop::Seconds(Duration::from_secs(3)),
            warmup: Duration::from_secs(1),
            durability: Durability::Full,
            gen_threads: 0,
            baseline: true,
            baseline_batches: Vec::new(),
            baseline_checkpoints: true,
            rounds: 3,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value.to_owned())),
                _ => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match name.as_str() {
                // cargo passes `--bench` to every bench target.
                "--bench" => {}
                "--help" | "-h" => return Err(USAGE.to_owned()),
                "--clients" => options.clients = counts(&value()?, &name)?,
                "--baseline-batches" => options.baseline_batches = counts(&value()?, &name)?,
                "--seconds" => options.stop = Stop::Seconds(seconds(&value()?, &name)?),
                "--requests" => {
                    let count = value()?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--requests takes a positive number\n{USAGE}"))?;
                    options.stop = Stop::Appends(count);
                }
                "--warmup" => options.warmup = seconds(&value()?, &name)?,
                "--rounds" => {
                    options.rounds = value()?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--rounds takes a positive number\n{USAGE}"))?;
                }
                "--scenarios" => {
                    options.scenarios = value()?
                        .split(',')
                        .filter(|s| !s.trim().is_empty() && s.trim() != "none")
                        .map(|s| match s.trim() {
                            "a" => Ok(Scenario::Single),
                            "b" => Ok(Scenario::Batch),
                            "c" => Ok(Scenario::Hot),
                            other => Err(format!("unknown scenario {other:?}\n{USAGE}")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--durability" => {
                    options.durability = match value()?.as_str() {
                        "full" => Durability::Full,
                        "normal" => Durability::Normal,
                        other => return Err(format!("unknown durability {other:?}\n{USAGE}")),
                    };
                }
                "--gen-threads" => {
                    options.gen_threads = value()?
                        .parse()
                        .map_err(|_| format!("--gen-threads takes a number\n{USAGE}"))?;
                }
                "--no-baseline" => options.baseline = false,
                "--no-baseline-checkpoints" => options.baseline_checkpoints = false,
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(options)
    }

    fn durability_arg(&self) -> &'static str {
        match self.durability {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }
}

fn counts(text: &str, name: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|n| n.trim().parse().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{name} takes positive numbers separated by commas\n{USAGE}"))
}

fn seconds(text: &str, name: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{name} takes a number of seconds\n{USAGE}"))
}

// ---------------------------------------------------------------------------------------------------------------
// One row against the server

/// What one row measured.
struct Measured {
    window: Duration,
    requests: u64,
    events: u64,
    conflicts: u64,
    latency: Histogram<u64>,
    /// c: from the first attempt of an append to its success, retries included.
    append_latency: Histogram<u64>,
    errors: u64,
    /// Failures that are not a single request's: a lost event, an unreadable metric, the first failed request.
    problems: Vec<String>,
    /// The server's group commits during the measured window, from its `/metrics`.
    commits: Option<CommitStats>,
    /// Cores the server and the load generator kept busy during the window.
    cpu: Option<(f64, f64)>,
}

fn measure_server(options: &Options, scenario: Scenario, clients: usize) -> anyhow::Result<Measured> {
    let server = Server::start(&["--durability", options.durability_arg()])?;
    let runtime = match options.gen_threads {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        threads => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
    }
    .context("start the load generator runtime")?;
    let target = Arc::new(Target::new(server.addr, &server.key)?);
    let measured = runtime.block_on(drive(target, server.child.id(), options, scenario, clients));
    drop(runtime);
    let stopped = server.stop();
    let measured = measured?;
    stopped?;
    Ok(measured)
}

/// When the measured window starts, and when it ends.
struct Window {
    from: Instant,
    end: End,
}

enum End {
    At(Instant),
    /// Appends still to measure, over all clients.
    After(AtomicI64),
}

impl Window {
    /// Whether one more append may start in the window.
    fn take(&self, now: Instant) -> bool {
        match &self.end {
            End::At(end) => now < *end,
            End::After(left) => left.fetch_sub(1, Ordering::Relaxed) > 0,
        }
    }

    /// Whether the time is up (a count-bounded window never expires).
    fn expired(&self, now: Instant) -> bool {
        matches!(self.end, End::At(end) if now >= end)
    }
}

async fn drive(
    target: Arc<Target>,
    server_pid: u32,
    options: &Options,
    scenario: Scenario,
    clients: usize,
) -> anyhow::Result<Measured> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Client::connect(&target).await?);
    }
    let from = Instant::now() + options.warmup;
    let window = Arc::new(Window {
        from,
        end: match options.stop {
            Stop::Seconds(duration) => End::At(from + duration),
            Stop::Appends(count) => End::After(AtomicI64::new(count)),
        },
    });
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(id, client)| tokio::spawn(run_client(client, id, scenario, Arc::clone(&window))))
        .collect();

    tokio::time::sleep_until(from.into()).await;
    let cpu_before = CpuSample::take(server_pid);
    let before = GroupCommits::scrape(&target).await;
    let mut total = ClientStats::new();
    for task in tasks {
        total.merge(task.await.context("a client task panicked")?);
    }
    let cpu = cpu_before.and_then(|before| CpuSample::take(server_pid)?.cores_since(&before));
    let after = GroupCommits::scrape(&target).await;

    let mut problems = Vec::new();
    problems.extend(total.first_error.take());
    let commits = match (before, after) {
        (Ok(before), Ok(after)) => after.since(&before),
        (Err(error), _) | (_, Err(error)) => {
            problems.push(format!("read /metrics: {error:#}"));
            None
        }
    };
    match head_position(&target).await {
        Ok(head) if head == total.stored_events => {}
        Ok(head) => problems.push(format!(
            "the tenant's head position is {head} but the clients saw {} events stored",
            total.stored_events
        )),
        Err(error) => problems.push(format!("read the head position: {error:#}")),
    }
    Ok(Measured {
        window: total
            .last_done
            .map_or(Duration::ZERO, |last| last.saturating_duration_since(from)),
        requests: total.requests,
        events: total.events,
        conflicts: total.conflicts,
        latency: total.latency,
        append_latency: total.append_latency,
        errors: total.errors,
        problems,
        commits,
        cpu,
    })
}

/// One client's counts; merged over all clients at the end of a row.
struct ClientStats {
    /// Successful requests that started in the window, and their events.
    requests: u64,
    events: u64,
    conflicts: u64,
    latency: Histogram<u64>,
    append_latency: Histogram<u64>,
    last_done: Option<Instant>,
    /// Over the whole row, warm-up included.
    errors: u64,
    first_error: Option<String>,
    stored_events: u64,
}

impl ClientStats {
    fn new() -> ClientStats {
        ClientStats {
            requests: 0,
            events: 0,
            conflicts: 0,
            latency: latency_histogram(),
            append_latency: latency_histogram(),
            last_done: None,
            errors: 0,
            first_error: None,
            stored_events: 0,
        }
    }

    fn stored(&mut self, measured: bool, started: Instant, done: Instant, events: u64) {
        self.stored_events += events;
        if measured {
            self.requests += 1;
            self.events += events;
            self.latency.saturating_record(micros(done - started));
            self.last_done = self.last_done.max(Some(done));
        }
    }

    fn failed(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("first failure: {}", what()));
        }
    }

    fn merge(&mut self, other: ClientStats) {
        self.requests += other.requests;
        self.events += other.events;
        self.conflicts += other.conflicts;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds merge");
        self.append_latency
            .add(&other.append_latency)
            .expect("histograms with the same bounds merge");
        self.last_done = self.last_done.max(other.last_done);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.stored_events += other.stored_events;
    }
}

/// 1 µs to 60 s with three significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One client: appends until the window ends, on its own connection.
async fn run_client(mut client: Client, id: usize, scenario: Scenario, window: Arc<Window>) -> ClientStats {
    let mut stats = ClientStats::new();
    let body = match scenario {
        Scenario::Single => Bytes::from(single_event_body()),
        Scenario::Batch => {
            let events = vec![single_event_body(); BATCH_EVENTS].join(",");
            Bytes::from(format!(r#"{{"events":[{events}]}}"#))
        }
        Scenario::Hot => Bytes::new(),
    };
    let mut sequence = 0_u64;
    // c: the version this client last saw the hot aggregate at.
    let mut seen_version = 0_u64;
    loop {
        let now = Instant::now();
        let measured = now >= window.from;
        if measured && !window.take(now) {
            break;
        }
        let alive = match scenario {
            Scenario::Single | Scenario::Batch => {
                sequence += 1;
                let path = format!("/aggregates/order_{id}_{sequence}/events");
                let started = Instant::now();
                let answer = client.send(Method::POST, &path, body.clone()).await;
                let done = Instant::now();
                match answer {
                    Ok((StatusCode::CREATED, _)) => {
                        stats.stored(measured, started, done, scenario.events_per_request());
                        true
                    }
                    Ok((status, body)) => {
                        stats.failed(|| format!("POST {path}: {status} {}", String::from_utf8_lossy(&body)));
                        true
                    }
                    Err(error) => {
                        stats.failed(|| format!("POST {path}: {error}"));
                        reconnect(&mut client, &mut stats).await
                    }
                }
            }
            Scenario::Hot => hot_append(&mut client, &mut stats, &mut seen_version, measured, &window).await,
        };
        if !alive {
            break;
        }
    }
    stats
}

fn single_event_body() -> String {
    format!(r#"{{"eventType":"{EVENT_TYPE}","data":{EVENT_DATA}}}"#)
}

/// c: appends one event to the hot aggregate at the version last seen, retrying on 409 with the version the server
/// reports. Returns whether the connection is still usable.
async fn hot_append(
    client: &mut Client,
    stats: &mut ClientStats,
    seen_version: &mut u64,
    measured: bool,
    window: &Window,
) -> bool {
    let path = format!("/aggregates/{HOT_AGGREGATE}/events");
    let first_try = Instant::now();
    loop {
        let body = format!(r#"{{"eventType":"{EVENT_TYPE}","data":{EVENT_DATA},"expectedVersion":{seen_version}}}"#);
        let started = Instant::now();
        let answer = client.send(Method::POST, &path, Bytes::from(body)).await;
        let done = Instant::now();
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                stats.failed(|| format!("POST {path}: {error}"));
                return reconnect(client, stats).await;
            }
        };
        let field = |name: &str| {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|body| body.get(name)?.as_u64())
        };
        match status {
            StatusCode::CREATED => {
                let Some(version) = field("version") else {
                    stats.failed(|| format!("POST {path}: 201 without a version: {}", String::from_utf8_lossy(&body)));
                    return true;
                };
                *seen_version = version;
                stats.stored(measured, started, done, 1);
                if measured {
                    stats.append_latency.saturating_record(micros(done - first_try));
                }
                return true;
            }
            StatusCode::CONFLICT => {
                let Some(actual) = field("actualVersion") else {
                    stats.failed(|| {
                        format!(
                            "POST {path}: 409 without actualVersion: {}",
                            String::from_utf8_lossy(&body)
                        )
                    });
                    return true;
                };
                *seen_version = actual;
                if measured {
                    stats.conflicts += 1;
                }
                if window.expired(done) {
                    return true;
                }
            }
            status => {
                stats.failed(|| format!("POST {path}: {status} {}", String::from_utf8_lossy(&body)));
                return true;
            }
        }
    }
}

/// After a transport error: a new connection, or `false` (and a counted failure) when none can be made.
async fn reconnect(client: &mut Client, stats: &mut ClientStats) -> bool {
    match Client::connect(&client.target).await {
        Ok(fresh) => {
            *client = fresh;
            true
        }
        Err(error) => {
            stats.failed(|| format!("reconnect: {error:#}"));
            false
        }
    }
}

async fn head_position(target: &Arc<Target>) -> anyhow::Result<u64> {
    let body = get(target, "/events?after=0&limit=1").await?;
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|log| log.get("headPosition")?.as_u64())
        .ok_or_else(|| anyhow!("no headPosition in {}", String::from_utf8_lossy(&body)))
}

/// The server's group-commit counters at one moment.
struct GroupCommits {
    at: Instant,
    /// Commits so far.
    count: f64,
    /// Requests in them.
    requests: f64,
    /// Seconds the writer spent writing and committing them.
    seconds: f64,
    /// WAL fsyncs by the syncer (durability full), the seconds they took, and the requests they made durable.
    syncs: f64,
    sync_seconds: f64,
    synced_requests: f64,
}

/// Group commits over a stretch of time.
#[derive(Debug, Clone, Copy)]
struct CommitStats {
    /// Requests per commit.
    mean_group: f64,
    /// Time to write and commit one group.
    mean_commit: Duration,
    /// The share of the time a group was open (being filled, or waiting for the syncer).
    writer_busy: f64,
    /// Mean WAL fsync time and requests made durable per fsync; `None` without fsyncs (durability normal).
    sync: Option<(Duration, f64)>,
}

impl GroupCommits {
    async fn scrape(target: &Arc<Target>) -> anyhow::Result<GroupCommits> {
        let body = get(target, "/metrics").await?;
        let text = String::from_utf8_lossy(&body);
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
                .ok_or_else(|| anyhow!("no {name} in /metrics"))
        };
        Ok(GroupCommits {
            at: Instant::now(),
            count: value("hapnd_group_commit_requests_count")?,
            requests: value("hapnd_group_commit_requests_sum")?,
            seconds: value("hapnd_group_commit_duration_seconds_sum")?,
            syncs: value("hapnd_wal_sync_duration_seconds_count")?,
            sync_seconds: value("hapnd_wal_sync_duration_seconds_sum")?,
            synced_requests: value("hapnd_wal_sync_requests_sum")?,
        })
    }

    fn since(&self, before: &GroupCommits) -> Option<CommitStats> {
        let commits = self.count - before.count;
        let wall = self.at.checked_duration_since(before.at)?.as_secs_f64();
        let busy = self.seconds - before.seconds;
        (commits > 0.0 && wall > 0.0).then(|| CommitStats {
            mean_group: (self.requests - before.requests) / commits,
            mean_commit: Duration::from_secs_f64(busy / commits),
            writer_busy: busy / wall,
            sync: {
                let syncs = self.syncs - before.syncs;
                (syncs > 0.0).then(|| {
                    (
                        Duration::from_secs_f64((self.sync_seconds - before.sync_seconds) / syncs),
                        (self.synced_requests - before.synced_requests) / syncs,
                    )
                })
            },
        })
    }
}

/// CPU time used so far by the server and by this process (the load generator), from `/proc/PID/stat`.
struct CpuSample {
    at: Instant,
    server: Duration,
    generator: Duration,
}

impl CpuSample {
    fn take(server_pid: u32) -> Option<CpuSample> {
        Some(CpuSample {
            at: Instant::now(),
            server: cpu_time(&server_pid.to_string())?,
            generator: cpu_time("self")?,
        })
    }

    /// Cores kept busy since `before`: (server, load generator).
    fn cores_since(&self, before: &CpuSample) -> Option<(f64, f64)> {
        let wall = self.at.checked_duration_since(before.at)?.as_secs_f64();
        let cores = |now: Duration, then: Duration| now.saturating_sub(then).as_secs_f64() / wall;
        (wall > 0.0).then(|| {
            (
                cores(self.server, before.server),
                cores(self.generator, before.generator),
            )
        })
    }
}

/// User plus system time of a process, all its threads.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may itself contain spaces: state is the
    // first, utime the 12th and stime the 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

// ---------------------------------------------------------------------------------------------------------------
// The server process

// ---------------------------------------------------------------------------------------------------------------
// The baseline

/// The baseline at one batch size.
struct Baseline {
    /// Requests (one event each) per transaction.
    batch: usize,
    /// The aggregate ids are those this many clients send, interleaved.
    clients: usize,
    events_per_s: f64,
    /// BEGIN to COMMIT, the counterpart of the server's group-commit duration.
    mean_transaction: Duration,
}

fn run_baseline(options: &Options, batch: usize, clients: usize) -> anyhow::Result<Baseline> {
    eprintln!("running the rusqlite baseline, {batch} request(s) per transaction, ids of {clients} client(s)");
    baseline(options, batch, clients)
}

/// Writes scenario a's rows straight into a fresh shard file, `batch` requests per transaction. The aggregate ids are
/// the ones `clients` clients of scenario a send, taking turns; this matters because each group then inserts into
/// that many places of the streams' unique index, as the server's groups do.
fn baseline(options: &Options, batch: usize, clients: usize) -> anyhow::Result<Baseline> {
    let dir = tempfile::tempdir().context("create a temporary dir")?;
    let path = dir.path().join("shard-000.db");
    let conn = open_shard_writer(&path, options.durability).context("open the shard")?;
    let rewind = std::sync::Arc::new(WalRewind::default());
    let shard = CheckpointedShard {
        path: path.clone(),
        rewind: rewind.clone(),
        rewind_after_frames: DEFAULT_WAL_REWIND_FRAMES,
    };
    let checkpoints = options
        .baseline_checkpoints
        .then(|| Checkpointer::spawn(vec![shard], options.durability))
        .transpose()
        .context("start the baseline's checkpoints")?;
    let duration = match options.stop {
        Stop::Seconds(duration) => duration,
        Stop::Appends(_) => Duration::from_secs(3),
    };
    let from = Instant::now() + options.warmup;
    let end = from + duration;
    let mut sequence = 0_u64;
    let mut position = 0_u64;
    let mut events = 0_u64;
    let mut transactions = 0_u32;
    let mut in_transactions = Duration::ZERO;
    let mut last_done = from;
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        // The shard writer's group: BEGIN IMMEDIATE, per request the stream lookup, the stream row and the event row
        // (no savepoint, as the writer needs one only to write a group again after a storage error), then one
        // COMMIT. The statements are the writer's, character for character.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let recorded_at = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros())?;
        for _ in 0..batch {
            let aggregate_id = format!("order_{}_{}", sequence % clients as u64, sequence / clients as u64 + 1);
            sequence += 1;
            let existing = conn
                .prepare_cached(
                    "SELECT stream_id, aggregate_type, version FROM streams WHERE tenant_id = ?1 AND aggregate_id = ?2",
                )?
                .query_row(params![BASELINE_TENANT.0, aggregate_id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
                })
                .optional()?;
            if existing.is_some() {
                bail!("the baseline's new aggregate {aggregate_id} already exists");
            }
            conn.prepare_cached(
                "INSERT INTO streams (tenant_id, aggregate_id, aggregate_type, version) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![BASELINE_TENANT.0, aggregate_id, "order", 1_i64])?;
            let stream_id = conn.last_insert_rowid();
            position += 1;
            conn.prepare_cached(
                "INSERT INTO events (event_key, stream_id, version, event_id, recorded_at, event_type, correlation_id,
                                 causation_id, metadata, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                event_key(BASELINE_TENANT, position),
                stream_id,
                1_i64,
                uuid::Uuid::new_v4().as_bytes(),
                recorded_at,
                EVENT_TYPE,
                None::<String>,
                None::<String>,
                None::<String>,
                EVENT_DATA,
            ])?;
        }
        conn.execute_batch("COMMIT")?;
        rewind.run_if_wanted(&conn)?;
        if started >= from {
            last_done = Instant::now();
            events += batch as u64;
            transactions += 1;
            in_transactions += last_done - started;
        }
    }
    if let Some(checkpoints) = checkpoints {
        checkpoints.stop();
    }
    let window = last_done.saturating_duration_since(from).as_secs_f64();
    Ok(Baseline {
        batch,
        clients,
        events_per_s: if window > 0.0 { events as f64 / window } else { 0.0 },
        mean_transaction: in_transactions.checked_div(transactions).unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The table

fn print_table(options: &Options, rows: &[Row], elapsed: Duration) {
    let measure = match options.stop {
        Stop::Seconds(duration) => format!("{} s", duration.as_secs_f64()),
        Stop::Appends(count) => format!("{count} appends"),
    };
    let generator = match options.gen_threads {
        0 => "current-thread".to_owned(),
        threads => format!("{threads}-worker"),
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "hapnd append bench: durability {}, {cpus} CPUs shared by server and load generator ({generator} runtime), \
         {} round(s) of every row, {} s warm-up + {measure} each",
        options.durability_arg(),
        options.rounds,
        options.warmup.as_secs_f64(),
    );

    let header = [
        "scenario",
        "clients",
        "round",
        "requests/s",
        "events/s",
        "p50",
        "p99",
        "p99.9",
        "group",
        "commit",
        "busy",
        "fsync×reqs",
        "CPU",
        "errors",
        "notes",
    ];
    let mut table = vec![header.map(str::to_owned)];
    let mut footnotes = Vec::new();
    let baselines: Vec<&Baseline> = rows
        .iter()
        .filter_map(|row| match row {
            Row::Baseline { baseline, round: None } => Some(baseline),
            _ => None,
        })
        .collect();
    for row in rows {
        let (scenario, clients, round, measured, share) = match row {
            Row::Server {
                scenario,
                clients,
                round,
                measured,
                share,
            } => (scenario, clients, round, measured, share),
            Row::Baseline { baseline, round } => {
                table.push(baseline_line(baseline, *round));
                continue;
            }
        };
        let seconds = measured.window.as_secs_f64();
        let rate = |count: u64| {
            if seconds > 0.0 {
                format!("{:.0}", count as f64 / seconds)
            } else {
                "-".to_owned()
            }
        };
        let quantile = |histogram: &Histogram<u64>, q: f64| {
            if histogram.is_empty() {
                "-".to_owned()
            } else {
                format_micros(histogram.value_at_quantile(q))
            }
        };
        let mut notes = Vec::new();
        // Its own baseline, or else (`--baseline-batches`) one of those at its group size.
        let share = share.or_else(|| {
            let commits = measured.commits.filter(|_| *scenario == Scenario::Single)?;
            let ceiling = baselines
                .iter()
                .find(|b| b.batch == batch_of(commits.mean_group) && b.clients == *clients)?;
            share_of(measured, ceiling)
        });
        if let Some(share) = share {
            notes.push(format!("{share:.0}% of baseline"));
        }
        if *scenario == Scenario::Hot {
            let per_append = measured.conflicts as f64 / measured.requests.max(1) as f64;
            notes.push(format!("{per_append:.1} conflicts/append"));
            footnotes.push(format!(
                "{} with {clients} client(s), round {round}: {} conflicts; append latency including retries p50 {}, p99 {}, \
                 p99.9 {}",
                scenario.label(),
                measured.conflicts,
                quantile(&measured.append_latency, 0.5),
                quantile(&measured.append_latency, 0.99),
                quantile(&measured.append_latency, 0.999),
            ));
        }
        if measured.errors > 0 || !measured.problems.is_empty() {
            notes.push("FAILED, see below".to_owned());
        }
        let commits = measured.commits;
        table.push([
            scenario.label().to_owned(),
            clients.to_string(),
            round.to_string(),
            rate(measured.requests),
            rate(measured.events),
            quantile(&measured.latency, 0.5),
            quantile(&measured.latency, 0.99),
            quantile(&measured.latency, 0.999),
            commits.map_or("-".to_owned(), |c| format!("{:.1}", c.mean_group)),
            commits.map_or("-".to_owned(), |c| format_micros(micros(c.mean_commit))),
            commits.map_or("-".to_owned(), |c| format!("{:.0}%", 100.0 * c.writer_busy)),
            commits.and_then(|c| c.sync).map_or("-".to_owned(), |(took, groups)| {
                format!("{}×{groups:.1}", format_micros(micros(took)))
            }),
            measured.cpu.map_or("-".to_owned(), |(server, generator)| {
                format!("{server:.2}+{generator:.2}")
            }),
            if measured.errors > 0 {
                format!("{} !!!", measured.errors)
            } else {
                "0".to_owned()
            },
            notes.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let width = widths[c];
            let _ = if c == 0 || c == header.len() - 1 {
                write!(line, "{cell:<width$}  ")
            } else {
                write!(line, "{cell:>width$}  ")
            };
        }
        println!("{}", line.trim_end());
    }
    for footnote in footnotes {
        println!("{footnote}");
    }
    println!("latency: per request, send to last byte. group: requests per group commit in the window (/metrics);");
    println!(
        "commit: a group's first write to its commit; busy: share of the window a group was open; fsync×reqs: mean"
    );
    println!("WAL fsync of the syncer and the requests each made durable; CPU: cores used by server+load generator.");
    println!("baseline: the writer's statements via rusqlite on a shard opened as the server");
    println!(
        "opens one, one thread, no HTTP, background checkpoints and WAL rewinds as in the server, `group` requests per"
    );
    println!("transaction, aggregate ids as `clients` clients send them.");
    for verdict in verdicts(options, rows) {
        println!("{verdict}");
    }
    println!("The run took {:.0} s.", elapsed.as_secs_f64());
}

/// Issue 2's targets for scenario a at [`TARGET_CLIENTS`] clients with durability full, each judged on the median
/// of the rounds (the machine is shared: one window can meet a busy neighbour or a slow disk).
fn verdicts(options: &Options, rows: &[Row]) -> Vec<String> {
    let rounds: Vec<(&Measured, Option<f64>)> = rows
        .iter()
        .filter_map(|row| match row {
            Row::Server {
                scenario: Scenario::Single,
                clients: TARGET_CLIENTS,
                measured,
                share,
                ..
            } if measured.window > Duration::ZERO && !measured.latency.is_empty() => Some((&**measured, *share)),
            _ => None,
        })
        .collect();
    if rounds.is_empty() || options.durability != Durability::Full {
        return Vec::new();
    }
    let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let events_per_s = median(
        rounds
            .iter()
            .map(|(m, _)| m.events as f64 / m.window.as_secs_f64())
            .collect(),
    );
    let p99 = median(
        rounds
            .iter()
            .map(|(m, _)| m.latency.value_at_quantile(0.99) as f64)
            .collect(),
    );
    let share = median(rounds.iter().filter_map(|(_, share)| *share).collect());
    let mut lines = vec![format!(
        "targets (a single event, {TARGET_CLIENTS} clients, durability full; the median of {} round(s)):",
        rounds.len()
    )];
    if let Some(events_per_s) = events_per_s {
        lines.push(format!(
            "  appends/s >= {TARGET_EVENTS_PER_S:.0}: {events_per_s:.0}  {}",
            mark(events_per_s >= TARGET_EVENTS_PER_S)
        ));
    }
    if let Some(p99) = p99 {
        let p99 = Duration::from_micros(p99 as u64);
        lines.push(format!(
            "  p99 <= {}: {}  {}",
            format_micros(micros(TARGET_P99)),
            format_micros(micros(p99)),
            mark(p99 <= TARGET_P99)
        ));
    }
    match share {
        Some(share) => lines.push(format!(
            "  share of the baseline >= {TARGET_SHARE_OF_BASELINE:.0}%: {share:.0}%  {}",
            mark(share >= TARGET_SHARE_OF_BASELINE)
        )),
        None => lines.push("  share of the baseline: not measured (no baseline ran)".to_owned()),
    }
    lines
}

fn baseline_line(baseline: &Baseline, round: Option<usize>) -> [String; 15] {
    let rate = format!("{:.0}", baseline.events_per_s);
    [
        "baseline rusqlite".to_owned(),
        baseline.clients.to_string(),
        round.map_or("-".to_owned(), |r| r.to_string()),
        rate.clone(),
        rate,
        "-".to_owned(),
        "-".to_owned(),
        "-".to_owned(),
        baseline.batch.to_string(),
        format_micros(micros(baseline.mean_transaction)),
        "100%".to_owned(),
        "-".to_owned(),
        "-".to_owned(),
        "-".to_owned(),
        String::new(),
    ]
}

/// The share of `baseline`'s events/s that a server row reached, in percent.
fn share_of(measured: &Measured, baseline: &Baseline) -> Option<f64> {
    let seconds = measured.window.as_secs_f64();
    (baseline.events_per_s > 0.0 && seconds > 0.0)
        .then(|| 100.0 * measured.events as f64 / seconds / baseline.events_per_s)
}

/// The baseline's requests per transaction for a mean group size.
fn batch_of(mean_group: f64) -> usize {
    (mean_group.round() as usize).max(1)
}

fn format_micros(micros: u64) -> String {
    match micros {
        0..1_000 => format!("{micros} µs"),
        1_000..10_000 => format!("{:.2} ms", micros as f64 / 1e3),
        10_000..100_000 => format!("{:.1} ms", micros as f64 / 1e3),
        _ => format!("{:.0} ms", micros as f64 / 1e3),
    }
}
