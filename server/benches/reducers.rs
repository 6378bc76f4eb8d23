//! Appends with a reducer bound against appends without one, through the real `hapnd` binary over HTTP, in one run
//! under the same load (issue 5's benchmark).
//!
//! `cargo bench -p hapnd-server --bench reducers` (as root: the reducer runs in the real jail). It builds
//! `dotnet-host` in Release into the bench's own temp dir (as `tests/shared/dotnet_build.rs` does), starts
//! `hapnd serve --dotnet-host` on a fresh data dir and `127.0.0.1:0`, uploads the issue's `OrderReducer`
//! (`tests/legit/order_reducer.cs`) bound to the type `order`, and then, for each client count, runs the same load
//! twice: against the type `plain` (no reducer) and against `order`. Each client has its own keep-alive HTTP/1.1
//! connection (hyper's low-level client, as in the append bench) and its own aggregates: one `OrderPlaced`, then
//! `ItemAdded` events, one event per append, a new aggregate every [`EVENTS_PER_AGGREGATE`] appends. Every answer is
//! checked (201, and with the reducer its `state` is the expected `{customerId, total}`); after each reducer case the
//! state read of an aggregate must equal its expected total, and at the end the tenant's head position must equal the
//! events the clients saw stored.
//!
//! Each case runs `HAPND_BENCH_ROUNDS` times, without and with the reducer in turn, so both meet the same neighbours on
//! this shared machine; the table shows every round and then each case's median, on which the targets are judged.
//!
//! Settings (environment): `HAPND_BENCH_SECONDS` measured seconds per round [5], `HAPND_BENCH_WARMUP` warm-up seconds
//! per round [1], `HAPND_BENCH_ROUNDS` rounds per case [3], `HAPND_BENCH_CLIENTS` client counts [1,32]. Targets
//! (issue 5): with a reducer, p50 ≤ 3 ms and ≤ 2× the p50 without one (per client count), and ≥ 5,000 appends/s at 32
//! clients; the run prints a verdict for each. The exit status is a failure only when some request or check failed
//! (then the numbers are not valid).

#[path = "../../tests/shared/dotnet_build.rs"]
mod dotnet_build;
#[path = "shared/http.rs"]
mod http;
#[path = "shared/machine_cpu.rs"]
mod machine_cpu;
#[path = "shared/median.rs"]
mod median;
#[path = "shared/server.rs"]
mod server;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Client, Target, get};
use hyper::{Method, StatusCode};
use median::median;
use serde::Deserialize;
use serde_json::{Value, json};
use server::Server;

/// The issue's example, the file the C# tests run.
const REDUCER: &str = include_str!("../../tests/legit/order_reducer.cs");
/// Appends per aggregate before a client moves to its next one: one `OrderPlaced`, then `ItemAdded`s.
const EVENTS_PER_AGGREGATE: u64 = 100;
/// Every `ItemAdded` adds this much; a multiple of 1/4, so every total is exact as a double too.
const PRICE: f64 = 1.25;
/// The reducer's compile (a cold compiler in the jail) longer than this fails the run.
const COMPILE_DEADLINE: Duration = Duration::from_secs(120);
/// Targets of issue 5.
const TARGET_P50: Duration = Duration::from_millis(3);
const TARGET_P50_RATIO: f64 = 2.0;
const TARGET_THROUGHPUT: f64 = 5_000.0;
const TARGET_THROUGHPUT_CLIENTS: usize = 32;

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("reducers bench: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("reducers bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Settings and cases

#[derive(Debug)]
struct Settings {
    measure: Duration,
    warmup: Duration,
    clients: Vec<usize>,
    rounds: usize,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let seconds = |name: &str, default: f64| -> Result<Duration, String> {
            match std::env::var(name) {
                Err(_) => Ok(Duration::from_secs_f64(default)),
                Ok(text) => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{name}={text:?} is not a number of seconds")),
            }
        };
        let clients = match std::env::var("HAPND_BENCH_CLIENTS") {
            Err(_) => vec![1, 32],
            Ok(text) => text
                .split(',')
                .map(|n| n.trim().parse().ok().filter(|n| *n > 0))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| format!("HAPND_BENCH_CLIENTS={text:?} is not positive numbers separated by commas"))?,
        };
        let measure = seconds("HAPND_BENCH_SECONDS", 5.0)?;
        if measure.is_zero() {
            return Err("HAPND_BENCH_SECONDS must be more than 0".to_owned());
        }
        let rounds = match std::env::var("HAPND_BENCH_ROUNDS") {
            Err(_) => 3,
            Ok(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("HAPND_BENCH_ROUNDS={text:?} is not a positive number"))?,
        };
        Ok(Settings {
            measure,
            warmup: seconds("HAPND_BENCH_WARMUP", 1.0)?,
            clients,
            rounds,
        })
    }
}

/// Which aggregate type a case appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `plain`: no reducer bound.
    Plain,
    /// `order`: the issue's `OrderReducer` bound.
    Reducer,
}

impl Kind {
    fn aggregate_type(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Reducer => "order",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Plain => "without reducer",
            Kind::Reducer => "with reducer",
        }
    }
}

/// One row: a kind, a client count, its round, and what was measured.
struct Case {
    kind: Kind,
    clients: usize,
    round: usize,
    measured: Measured,
    /// The server's own view of the case (from `/metrics`, warm-up included).
    server: ServerView,
}

/// What `/metrics` says about a case: the reducer's runs in the workers and the appends that raced.
#[derive(Default, Clone, Copy)]
struct ServerView {
    reducer_runs: f64,
    reducer_seconds: f64,
    retries: f64,
    appends: f64,
    commits: f64,
    batched: f64,
    batches: f64,
}

impl ServerView {
    fn since(self, before: ServerView) -> ServerView {
        ServerView {
            reducer_runs: self.reducer_runs - before.reducer_runs,
            reducer_seconds: self.reducer_seconds - before.reducer_seconds,
            retries: self.retries - before.retries,
            appends: self.appends - before.appends,
            commits: self.commits - before.commits,
            batched: self.batched - before.batched,
            batches: self.batches - before.batches,
        }
    }
}

async fn server_view(target: &Arc<Target>) -> anyhow::Result<ServerView> {
    let body = get(target, "/metrics").await?;
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    Ok(ServerView {
        reducer_runs: value("hapnd_reducer_duration_seconds_count"),
        reducer_seconds: value("hapnd_reducer_duration_seconds_sum"),
        retries: value("hapnd_reducer_retries_total"),
        appends: value("hapnd_group_commit_requests_sum"),
        commits: value("hapnd_group_commit_requests_count"),
        batched: value("hapnd_reducer_batch_appends_sum"),
        batches: value("hapnd_reducer_batch_appends_count"),
    })
}

fn run(settings: &Settings) -> anyhow::Result<bool> {
    let started = Instant::now();
    eprintln!("building dotnet-host (Release)");
    let dotnet_host = dotnet_build::dotnet_host_build();
    let server = Server::start(&[OsStr::new("--dotnet-host"), dotnet_host.as_os_str()])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the load generator runtime")?;
    let target = Arc::new(Target::new(server.addr, &server.key)?);
    let result = runtime.block_on(run_cases(&target, settings));
    drop(runtime);
    let stopped = server.stop();
    let (cases, mut problems) = result?;
    stopped?;

    print_table(settings, &cases, started.elapsed());
    for case in &cases {
        if case.measured.errors > 0 {
            problems.push(format!(
                "{} with {} client(s): {} failed request(s); {}",
                case.kind.label(),
                case.clients,
                case.measured.errors,
                case.measured.first_error.as_deref().unwrap_or("")
            ));
        }
    }
    if problems.is_empty() {
        println!("correctness: every answer and every state checked, the head position matches: ok");
        return Ok(true);
    }
    eprintln!();
    eprintln!("!!!!!!!! THE RUN HAD FAILURES; ITS NUMBERS ARE NOT VALID !!!!!!!!");
    for problem in &problems {
        eprintln!("  {problem}");
    }
    Ok(false)
}

/// Uploads the reducer, then runs every case; returns the cases and the problems the final checks found.
async fn run_cases(target: &Arc<Target>, settings: &Settings) -> anyhow::Result<(Vec<Case>, Vec<String>)> {
    let reducer_id = upload_reducer(target).await?;
    eprintln!("reducer {reducer_id} ready and bound to `order`");
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    let mut stored = 0;
    for &clients in &settings.clients {
        for (round, kind) in (1..=settings.rounds).flat_map(|round| [(round, Kind::Plain), (round, Kind::Reducer)]) {
            eprintln!("running {} with {clients} client(s), round {round}", kind.label());
            let before = server_view(target).await?;
            let (measured, last) = drive(target, settings, kind, clients, cases.len()).await?;
            let server = server_view(target).await?.since(before);
            stored += measured.stored_events;
            if kind == Kind::Reducer
                && let Some((aggregate, events)) = last
                && let Err(problem) = check_state(target, &aggregate, events, &reducer_id).await
            {
                problems.push(problem);
            }
            cases.push(Case {
                kind,
                clients,
                round,
                measured,
                server,
            });
        }
    }
    match head_position(target).await {
        Ok(head) if head == stored => {}
        Ok(head) => problems.push(format!(
            "the tenant's head position is {head} but the clients saw {stored} events stored"
        )),
        Err(error) => problems.push(format!("read the head position: {error:#}")),
    }
    Ok((cases, problems))
}

// ---------------------------------------------------------------------------------------------------------------
// The reducer

/// Uploads the issue's reducer bound to `order` and waits until it is ready; returns its `reducerId`.
async fn upload_reducer(target: &Arc<Target>) -> anyhow::Result<String> {
    let mut client = Client::connect(target).await?;
    let body = json!({"files": {"OrderReducer.cs": REDUCER}, "aggregateType": "order"});
    let body = Bytes::from(serde_json::to_vec(&body).context("serialize the upload")?);
    let (status, answer) = client
        .send(Method::POST, "/reducers", body)
        .await
        .context("POST /reducers")?;
    if status != StatusCode::ACCEPTED {
        bail!("POST /reducers: {status} {}", String::from_utf8_lossy(&answer));
    }
    let upload = json_of(&answer)?["uploadId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no uploadId in {}", String::from_utf8_lossy(&answer)))?;
    let deadline = Instant::now() + COMPILE_DEADLINE;
    loop {
        let status = json_of(&get(target, &format!("/reducers/{upload}/status")).await?)?;
        match status["status"].as_str() {
            Some("ready") => {
                return status["reducerId"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("ready without a reducerId: {status}"));
            }
            Some("compiling") if Instant::now() < deadline => {}
            Some("compiling") => bail!("the reducer is still compiling after {COMPILE_DEADLINE:?}"),
            _ => bail!("the reducer did not compile: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The state read of `aggregate` must be the order after `events` appends: customer `c0`, `events - 1` items.
async fn check_state(target: &Arc<Target>, aggregate: &str, events: u64, reducer_id: &str) -> Result<(), String> {
    let read = get(target, &format!("/aggregates/{aggregate}/state"))
        .await
        .and_then(|body| json_of(&body))
        .map_err(|error| format!("read the state of {aggregate}: {error:#}"))?;
    let expected = expected_state(0, events);
    let state_matches = OrderState::deserialize(&read["state"]).is_ok_and(|state| state.is_after(&customer(0), events));
    if read["version"] != events || read["reducerId"] != reducer_id || !state_matches {
        return Err(format!(
            "the state of {aggregate} is {read}, expected version {events}, reducer {reducer_id}, state {expected}"
        ));
    }
    println!(
        "correctness: {aggregate} at version {events} has state {} = {expected}",
        read["state"]
    );
    Ok(())
}

/// The customer of a client's orders.
fn customer(client: usize) -> String {
    format!("c{client}")
}

/// The total of an order after `events` appends: one `OrderPlaced`, then `ItemAdded`s.
fn expected_total(events: u64) -> f64 {
    events.saturating_sub(1) as f64 * PRICE
}

/// The `OrderReducer`'s state after a client's `events` appends to one aggregate, as the messages show it.
fn expected_state(client: usize, events: u64) -> Value {
    json!({"customerId": customer(client), "total": expected_total(events)})
}

fn json_of(body: &[u8]) -> anyhow::Result<Value> {
    serde_json::from_slice(body).with_context(|| format!("not JSON: {}", String::from_utf8_lossy(body)))
}

// ---------------------------------------------------------------------------------------------------------------
// One case

/// What one case measured.
struct Measured {
    /// From the window's start to the last answer in it.
    window: Duration,
    /// Appends that started in the window and were stored.
    appends: u64,
    latency: Histogram<u64>,
    /// Over the whole case, warm-up included.
    errors: u64,
    first_error: Option<String>,
    stored_events: u64,
    /// Busy CPU of the whole machine over the measured window.
    machine_cpu: Option<Duration>,
}

impl Measured {
    fn new() -> Measured {
        Measured {
            window: Duration::ZERO,
            appends: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            errors: 0,
            first_error: None,
            stored_events: 0,
            machine_cpu: None,
        }
    }

    fn failed(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("first failure: {}", what()));
        }
    }

    fn merge(&mut self, other: Measured) {
        self.window = self.window.max(other.window);
        self.appends += other.appends;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds merge");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.stored_events += other.stored_events;
        self.machine_cpu = self.machine_cpu.or(other.machine_cpu);
    }

    fn throughput(&self) -> f64 {
        let seconds = self.window.as_secs_f64();
        if seconds > 0.0 {
            self.appends as f64 / seconds
        } else {
            0.0
        }
    }

    fn quantile(&self, q: f64) -> Option<Duration> {
        (!self.latency.is_empty()).then(|| Duration::from_micros(self.latency.value_at_quantile(q)))
    }
}

/// Runs one case; returns what it measured and client 0's last aggregate with its event count.
async fn drive(
    target: &Arc<Target>,
    settings: &Settings,
    kind: Kind,
    clients: usize,
    case_number: usize,
) -> anyhow::Result<(Measured, Option<(String, u64)>)> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Client::connect(target).await?);
    }
    let from = Instant::now() + settings.warmup;
    let end = from + settings.measure;
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(id, client)| tokio::spawn(run_client(client, kind, case_number, id, from, end)))
        .collect();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let before = machine_cpu::MachineCpu::sample()?;
        tokio::time::sleep_until(end.into()).await;
        Some(machine_cpu::MachineCpu::sample()?.since(&before))
    });
    let mut total = Measured::new();
    total.machine_cpu = cpu.await.context("the CPU sampler panicked")?;
    let mut last = None;
    for task in tasks {
        let (measured, client_last) = task.await.context("a client task panicked")?;
        total.merge(measured);
        last = last.or(client_last);
    }
    Ok((total, last))
}

/// One client: appends on its own connection and its own aggregates until the window ends. Returns what it measured
/// and its last aggregate with the number of events in it.
async fn run_client(
    mut client: Client,
    kind: Kind,
    case_number: usize,
    id: usize,
    from: Instant,
    end: Instant,
) -> (Measured, Option<(String, u64)>) {
    let mut measured = Measured::new();
    let customer = customer(id);
    let placed = Bytes::from(format!(
        r#"{{"eventType":"OrderPlaced","data":{{"customerId":"{customer}"}}}}"#
    ));
    let added = Bytes::from(format!(
        r#"{{"eventType":"ItemAdded","data":{{"item":"Widget","price":{PRICE}}}}}"#
    ));
    let mut aggregate_number = 0_u64;
    let mut aggregate = String::new();
    // Events stored in the current aggregate.
    let mut events = EVENTS_PER_AGGREGATE;
    let mut last = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if events == EVENTS_PER_AGGREGATE {
            aggregate_number += 1;
            aggregate = format!("{}_r{case_number}c{id}n{aggregate_number}", kind.aggregate_type());
            events = 0;
        }
        let path = format!("/aggregates/{aggregate}/events");
        let body = if events == 0 { placed.clone() } else { added.clone() };
        let started = Instant::now();
        let answer = client.send(Method::POST, &path, body).await;
        let done = Instant::now();
        match answer {
            Ok((StatusCode::CREATED, body)) => match check_answer(kind, id, &customer, events + 1, &body) {
                Ok(()) => {
                    events += 1;
                    measured.stored_events += 1;
                    last = Some((aggregate.clone(), events));
                    if started >= from && done <= end {
                        measured.appends += 1;
                        measured.latency.saturating_record(micros(done - started));
                        measured.window = done - from;
                    }
                }
                Err(problem) => {
                    // Stored, but answered wrongly: counted, and the client moves on to a new aggregate.
                    measured.stored_events += 1;
                    measured.failed(|| format!("POST {path}: {problem}"));
                    events = EVENTS_PER_AGGREGATE;
                }
            },
            Ok((status, body)) => {
                measured.failed(|| format!("POST {path}: {status} {}", String::from_utf8_lossy(&body)));
                events = EVENTS_PER_AGGREGATE;
            }
            Err(error) => {
                measured.failed(|| format!("POST {path}: {error}"));
                match Client::connect(&client.target).await {
                    Ok(fresh) => client = fresh,
                    Err(error) => {
                        measured.failed(|| format!("reconnect: {error:#}"));
                        break;
                    }
                }
                events = EVENTS_PER_AGGREGATE;
            }
        }
    }
    (measured, last)
}

/// A 201's body as the check reads it. Typed rather than a `Value`: parsing every answer into a map cost the load
/// generator, which shares the CPUs with the server, 14% of its time.
#[derive(Deserialize)]
struct Answer<'a> {
    version: u64,
    #[serde(borrow)]
    state: Option<OrderState<'a>>,
}

/// The `OrderReducer`'s state; any other field makes it a different state.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OrderState<'a> {
    #[serde(borrow)]
    customer_id: std::borrow::Cow<'a, str>,
    /// A C# `decimal`, whose text keeps its scale (`2.50`): compared as a number.
    total: f64,
}

impl OrderState<'_> {
    /// Whether this is `customer`'s order after `events` appends.
    fn is_after(&self, customer: &str, events: u64) -> bool {
        self.customer_id == customer && self.total == expected_total(events)
    }
}

/// A 201's body: with the reducer, `state` is the order after `version` events; without, there is no `state`.
fn check_answer(kind: Kind, client: usize, customer: &str, version: u64, body: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(body).into_owned();
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("201 with a body that is not the answer ({e}): {}", shown()))?;
    if answer.version != version {
        return Err(format!("expected version {version}: {}", shown()));
    }
    match (kind, answer.state) {
        (Kind::Plain, None) => Ok(()),
        (Kind::Plain, Some(_)) => Err(format!("a state without a reducer: {}", shown())),
        (Kind::Reducer, Some(state)) if state.is_after(customer, version) => Ok(()),
        (Kind::Reducer, _) => Err(format!(
            "expected state {}: {}",
            expected_state(client, version),
            shown()
        )),
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

async fn head_position(target: &Arc<Target>) -> anyhow::Result<u64> {
    let body = get(target, "/events?after=0&limit=1").await?;
    json_of(&body)?["headPosition"]
        .as_u64()
        .ok_or_else(|| anyhow!("no headPosition in {}", String::from_utf8_lossy(&body)))
}

// ---------------------------------------------------------------------------------------------------------------
// The server process

// ---------------------------------------------------------------------------------------------------------------
// The table and the verdicts

/// A row of the table: one round of a case, or the median of its rounds.
#[derive(Clone)]
struct Row {
    kind: Kind,
    clients: usize,
    /// The round's number, or `None` for the median row.
    round: Option<usize>,
    throughput: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    p999: Option<Duration>,
    reducer_run: Option<Duration>,
    retries: f64,
    batch: Option<f64>,
    group: f64,
    cpu_per_append: Option<Duration>,
    errors: u64,
}

impl Row {
    fn of(case: &Case) -> Row {
        let m = &case.measured;
        let server = &case.server;
        Row {
            kind: case.kind,
            clients: case.clients,
            round: Some(case.round),
            throughput: m.throughput(),
            p50: m.quantile(0.5),
            p99: m.quantile(0.99),
            p999: m.quantile(0.999),
            reducer_run: (server.reducer_runs > 0.0)
                .then(|| Duration::from_secs_f64(server.reducer_seconds / server.reducer_runs)),
            retries: server.retries / server.appends.max(1.0),
            batch: (server.batches > 0.0).then(|| server.batched / server.batches),
            group: server.appends / server.commits.max(1.0),
            cpu_per_append: m
                .machine_cpu
                .filter(|_| m.appends > 0)
                .map(|cpu| cpu / m.appends as u32),
            errors: m.errors,
        }
    }

    /// Each column's median over the rounds (the mean of the middle two for an even count); errors add up.
    fn median(rounds: &[Row]) -> Option<Row> {
        let first = rounds.first()?;
        let numbers = |value: &dyn Fn(&Row) -> Option<f64>| median(rounds.iter().filter_map(value).collect());
        let durations = |value: &dyn Fn(&Row) -> Option<Duration>| {
            numbers(&|r| value(r).map(|d| d.as_secs_f64())).map(Duration::from_secs_f64)
        };
        Some(Row {
            kind: first.kind,
            clients: first.clients,
            round: None,
            throughput: numbers(&|r| Some(r.throughput)).unwrap_or(0.0),
            p50: durations(&|r| r.p50),
            p99: durations(&|r| r.p99),
            p999: durations(&|r| r.p999),
            reducer_run: durations(&|r| r.reducer_run),
            retries: numbers(&|r| Some(r.retries)).unwrap_or(0.0),
            batch: numbers(&|r| r.batch),
            group: numbers(&|r| Some(r.group)).unwrap_or(0.0),
            cpu_per_append: durations(&|r| r.cpu_per_append),
            errors: rounds.iter().map(|r| r.errors).sum(),
        })
    }

    fn cells(&self) -> [String; 13] {
        let duration = |d: Option<Duration>| d.map_or("-".to_owned(), format_duration);
        [
            self.kind.label().to_owned(),
            self.clients.to_string(),
            self.round.map_or("median".to_owned(), |r| r.to_string()),
            format!("{:.0}", self.throughput),
            duration(self.p50),
            duration(self.p99),
            duration(self.p999),
            duration(self.reducer_run),
            format!("{:.3}", self.retries),
            self.batch.map_or("-".to_owned(), |b| format!("{b:.1}")),
            format!("{:.1}", self.group),
            duration(self.cpu_per_append),
            if self.errors > 0 {
                format!("{} !!!", self.errors)
            } else {
                "0".to_owned()
            },
        ]
    }
}

/// The median row of each case (kind and client count), in the order the cases ran.
fn medians(rows: &[Row]) -> Vec<Row> {
    let mut seen = Vec::new();
    for row in rows {
        if !seen.contains(&(row.kind, row.clients)) {
            seen.push((row.kind, row.clients));
        }
    }
    seen.into_iter()
        .filter_map(|(kind, clients)| {
            let rounds: Vec<Row> = rows
                .iter()
                .filter(|r| r.kind == kind && r.clients == clients)
                .cloned()
                .collect();
            Row::median(&rounds)
        })
        .collect()
}

fn print_table(settings: &Settings, cases: &[Case], elapsed: Duration) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "hapnd reducers bench: durability full, {cpus} CPUs shared by server, workers and load generator, \
         {} rounds of each case, without and with the reducer in turn, {} s warm-up + {} s each, one event per \
         append, {EVENTS_PER_AGGREGATE} appends per aggregate",
        settings.rounds,
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64(),
    );
    let header = [
        "case",
        "clients",
        "round",
        "appends/s",
        "p50",
        "p99",
        "p99.9",
        "reducer run",
        "retries",
        "batch",
        "group",
        "CPU/append",
        "errors",
    ];
    let rows: Vec<Row> = cases.iter().map(Row::of).collect();
    let medians = medians(&rows);
    let mut table = vec![header.map(str::to_owned)];
    table.extend(rows.iter().map(Row::cells));
    let rounds_end = table.len();
    table.extend(medians.iter().map(Row::cells));
    let widths: Vec<usize> = (0..header.len())
        .map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (index, row) in table.iter().enumerate() {
        if index == rounds_end {
            println!();
        }
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let width = widths[c];
            let _ = if c == 0 {
                write!(line, "{cell:<width$}  ")
            } else {
                write!(line, "{cell:>width$}  ")
            };
        }
        println!("{}", line.trim_end());
    }
    println!(
        "latency: per append, send to last byte of the answer. reducer run: the server's mean time for one run in a \
         jailed worker (round trip and waiting for a free worker included); retries: reducer runs again because the \
         aggregate moved, per append; batch: appends per worker round trip; group: appends per group commit; \
         CPU/append: busy CPU of the whole machine (server, workers, load generator, kernel) in the window, per append. \
         median: each column's median over the rounds, which the targets are judged on (the machine is shared, and \
         one window can meet a busy neighbour)."
    );
    println!("targets:");
    for verdict in verdicts(settings, &medians) {
        println!("  {verdict}");
    }
    println!("The run took {:.0} s.", elapsed.as_secs_f64());
}

/// One line per target of issue 5, judged on the median rows: what it asks, what was measured, and PASS or FAIL.
fn verdicts(settings: &Settings, medians: &[Row]) -> Vec<String> {
    let find = |kind: Kind, clients: usize| medians.iter().find(|r| r.kind == kind && r.clients == clients);
    let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let mut lines = Vec::new();
    for &clients in &settings.clients {
        let (Some(with), Some(without)) = (find(Kind::Reducer, clients), find(Kind::Plain, clients)) else {
            continue;
        };
        let (Some(with_p50), Some(without_p50)) = (with.p50, without.p50) else {
            lines.push(format!("{clients} client(s): no appends measured  FAIL"));
            continue;
        };
        lines.push(format!(
            "with-reducer p50 <= {} at {clients} client(s): {}  {}",
            format_duration(TARGET_P50),
            format_duration(with_p50),
            mark(with_p50 <= TARGET_P50)
        ));
        let ratio = with_p50.as_secs_f64() / without_p50.as_secs_f64();
        lines.push(format!(
            "with-reducer p50 <= {TARGET_P50_RATIO}x without at {clients} client(s): {} vs {} = {ratio:.2}x  {}",
            format_duration(with_p50),
            format_duration(without_p50),
            mark(ratio <= TARGET_P50_RATIO)
        ));
    }
    match find(Kind::Reducer, TARGET_THROUGHPUT_CLIENTS) {
        Some(with) => lines.push(format!(
            "with-reducer throughput >= {TARGET_THROUGHPUT:.0} appends/s at {TARGET_THROUGHPUT_CLIENTS} clients: \
             {:.0}/s  {}",
            with.throughput,
            mark(with.throughput >= TARGET_THROUGHPUT)
        )),
        None => lines.push(format!(
            "with-reducer throughput at {TARGET_THROUGHPUT_CLIENTS} clients: not measured (HAPND_BENCH_CLIENTS)"
        )),
    }
    lines
}

fn format_duration(duration: Duration) -> String {
    let micros = micros(duration);
    match micros {
        0..1_000 => format!("{micros} µs"),
        1_000..10_000 => format!("{:.2} ms", micros as f64 / 1e3),
        10_000..100_000 => format!("{:.1} ms", micros as f64 / 1e3),
        _ => format!("{:.0} ms", micros as f64 / 1e3),
    }
}
