//! The harness: starts the real `hapnd` binary on `127.0.0.1:0` with its own temporary data dir, speaks HTTP to it
//! and runs its command-line tool, so the scenario files read as what a client does and what it sees.
//!
//! Nothing here sleeps to wait for something: starting, stopping and draining poll their condition with a deadline.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};
use tempfile::TempDir;

/// The binary under test.
pub const HAPND: &str = env!("CARGO_BIN_EXE_hapnd");
/// How long a start or a stop may take before the test fails; generous because the box is small and shared.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often a waiting loop looks at its condition again.
const POLL: Duration = Duration::from_millis(5);

/// A status and a JSON body (a body that is not JSON is kept as a JSON string, so assertions show it).
pub type Reply = (StatusCode, Value);

/// One running (or stopped) `hapnd serve`, with the data dir it owns. Dropping it kills the process.
pub struct Server {
    /// `http://127.0.0.1:PORT` of the current run.
    pub base_url: String,
    /// The default tenant's key, as printed on the first start.
    pub default_key: String,
    api: Api,
    data_dir: PathBuf,
    launch: Launch,
    run: Run,
    _root: TempDir,
}

/// How the server is started: the arguments after the binary name, and extra environment variables.
#[derive(Clone, Debug)]
pub struct Launch {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

/// A cheap, cloneable HTTP handle on a server, for concurrent writers.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base_url: String,
}

/// One acknowledged event, as the server acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub event_id: String,
    pub aggregate: String,
    pub version: u64,
    pub position: u64,
}

impl Server {
    /// Starts `hapnd serve --data-dir TMP --listen 127.0.0.1:0`.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// Like [`Server::start`], with extra `serve` options such as `--max-batch-events 5`.
    pub async fn start_with(extra: &[&str]) -> Server {
        let root = tempfile::tempdir().expect("create temp data dir");
        let data_dir = root.path().to_path_buf();
        let mut args = vec!["serve".to_string(), "--data-dir".to_string(), path_arg(&data_dir)];
        args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        Server::start_launch(root, data_dir, Launch { args, envs: vec![] }).await
    }

    /// Starts the server exactly as `launch` says; `data_dir` is where it is expected to keep its data (for the
    /// command-line tool), `root` is kept alive as long as the server.
    pub async fn start_launch(root: TempDir, data_dir: PathBuf, launch: Launch) -> Server {
        let (run, base_url) = Run::start(&launch).await;
        let stdout = run.stdout();
        let default_key = default_key_line(&stdout)
            .unwrap_or_else(|| panic!("first start printed no default tenant api key; stdout:\n{stdout}"));
        assert!(
            default_key.starts_with("hpd_"),
            "default key {default_key:?} does not start with hpd_"
        );
        Server {
            api: Api::new(&base_url),
            base_url,
            default_key,
            data_dir,
            launch,
            run,
            _root: root,
        }
    }

    /// A cloneable HTTP handle for tasks.
    pub fn api(&self) -> Api {
        self.api.clone()
    }

    /// Everything the current run printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.run.stdout()
    }

    /// Everything the current run printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.run.stderr()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop_sigterm(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit().await
    }

    /// Sends SIGTERM without waiting (for tests that keep writing while the server drains).
    pub fn send_sigterm(&self) {
        let pid = libc::pid_t::try_from(self.run.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped), and a valid signal number.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed: {}", std::io::Error::last_os_error());
    }

    /// Waits (with a deadline) for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.run.child.try_wait().expect("wait for hapnd") {
                self.run.join_pumps();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hapnd did not exit in time; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// `kill -9`: no chance to flush or drain.
    pub fn kill9(&mut self) {
        self.run.child.kill().expect("send SIGKILL to hapnd");
        self.run.child.wait().expect("reap hapnd");
        self.run.join_pumps();
    }

    /// Starts the server again on the same data dir with the same options (after a stop or a kill).
    pub async fn restart(&mut self) {
        assert!(
            self.run.child.try_wait().expect("poll hapnd").is_some(),
            "restart() needs the previous run stopped first"
        );
        let (run, base_url) = Run::start(&self.launch).await;
        self.run = run;
        self.api = Api::new(&base_url);
        self.base_url = base_url;
    }

    /// Runs `hapnd ARGS... --data-dir DIR` and returns its output (whatever the exit status).
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = tokio::process::Command::new(HAPND);
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        clean_env(cmd.as_std_mut());
        cmd.stdin(Stdio::null())
            .output()
            .await
            .expect("run hapnd command-line tool")
    }

    /// Runs a command-line tool command that must succeed and print JSON; returns that JSON.
    pub async fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "hapnd {args:?} failed with {}; stdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("hapnd {args:?} printed no JSON ({e}):\n{stdout}"))
    }

    /// `hapnd tenant create NAME --json`; returns the new tenant's api key.
    pub async fn create_tenant(&self, name: &str) -> String {
        let created = self.cli_json(&["tenant", "create", name, "--json"]).await;
        assert_eq!(created["tenantId"], name, "{created}");
        assert!(str_of(&created["keyId"]).starts_with("key_"), "{created}");
        let key = str_of(&created["apiKey"]).to_string();
        assert!(key.starts_with("hpd_"), "{created}");
        key
    }

    /// `hapnd key create --tenant NAME --json`; returns `(keyId, apiKey)`.
    pub async fn create_key(&self, tenant: &str) -> (String, String) {
        let created = self.cli_json(&["key", "create", "--tenant", tenant, "--json"]).await;
        assert_eq!(created["tenantId"], tenant, "{created}");
        let key_id = str_of(&created["keyId"]).to_string();
        let key = str_of(&created["apiKey"]).to_string();
        assert!(key_id.starts_with("key_") && key.starts_with("hpd_"), "{created}");
        (key_id, key)
    }
}

impl Deref for Server {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    fn new(base_url: &str) -> Api {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build http client");
        Api {
            http,
            base_url: base_url.to_string(),
        }
    }

    /// A request to `path`, with no authorization and no body yet.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base_url))
    }

    /// Sends a request; `Err` only when no HTTP response came back (refused, reset, timed out).
    pub async fn try_send(&self, request: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// Sends a request that must get an HTTP response.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.try_send(request).await.expect("the server answers")
    }

    /// A `POST path` with `Authorization: Bearer key`, a JSON body and extra headers.
    pub fn json_post(&self, key: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut request = self.request(Method::POST, path).bearer_auth(key).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
    }

    /// `POST path` with a JSON body and `Authorization: Bearer key`.
    pub async fn post_json(&self, key: &str, path: &str, body: &Value) -> Reply {
        self.post_json_with(key, path, body, &[]).await
    }

    /// [`Api::post_json`] with extra headers.
    pub async fn post_json_with(&self, key: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.send(self.json_post(key, path, body, headers)).await
    }

    /// `POST /aggregates/{aggregate}/events` with `body`.
    pub async fn append(&self, key: &str, aggregate: &str, body: &Value) -> Reply {
        self.post_json(key, &events_path(aggregate), body).await
    }

    /// Like [`Api::append`], but a transport failure is returned instead of failing the test.
    pub async fn try_append(&self, key: &str, aggregate: &str, body: &Value) -> Result<Reply, reqwest::Error> {
        self.try_send(self.json_post(key, &events_path(aggregate), body, &[]))
            .await
    }

    /// `GET path` with `Authorization: Bearer key`.
    pub async fn get(&self, key: &str, path: &str) -> Reply {
        self.send(self.request(Method::GET, path).bearer_auth(key)).await
    }

    /// `GET path` without authorization, returning the raw text (for `/metrics` and the probes).
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .request(Method::GET, path)
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        (status, response.text().await.expect("read response body"))
    }

    /// The whole stream of one aggregate, paged with `fromVersion`/`nextFromVersion` `page` events at a time.
    pub async fn read_stream(&self, key: &str, aggregate: &str, page: u64) -> Vec<Value> {
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let path = format!("{}?fromVersion={from}&limit={page}", events_path(aggregate));
            let (status, body) = self.get(key, &path).await;
            assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
            let batch = body["events"]
                .as_array()
                .unwrap_or_else(|| panic!("GET {path}: no events: {body}"));
            events.extend(batch.iter().cloned());
            match &body["nextFromVersion"] {
                Value::Null => return events,
                next => {
                    let next = next
                        .as_u64()
                        .unwrap_or_else(|| panic!("GET {path}: bad nextFromVersion: {body}"));
                    assert_eq!(next, from + batch.len() as u64, "GET {path}: nextFromVersion: {body}");
                    from = next;
                }
            }
        }
    }

    /// The tenant's whole log, paged with `after`/`nextAfter` `page` events at a time, checking the paging fields.
    pub async fn read_log(&self, key: &str, page: u64) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/events?after={after}&limit={page}");
            let (status, body) = self.get(key, &path).await;
            assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
            let batch = body["events"]
                .as_array()
                .unwrap_or_else(|| panic!("GET {path}: no events: {body}"));
            let next = body["nextAfter"]
                .as_u64()
                .unwrap_or_else(|| panic!("GET {path}: no nextAfter: {body}"));
            let head = body["headPosition"]
                .as_u64()
                .unwrap_or_else(|| panic!("GET {path}: no headPosition: {body}"));
            assert!(batch.len() as u64 <= page, "GET {path}: more than limit: {body}");
            match batch.last() {
                None => {
                    assert_eq!(next, after, "GET {path}: an empty page's nextAfter is `after`: {body}");
                    assert_eq!(head, after, "GET {path}: the log ended before headPosition: {body}");
                    return events;
                }
                Some(last) => {
                    assert_eq!(
                        next,
                        position(last),
                        "GET {path}: nextAfter is the last position: {body}"
                    );
                    assert!(head >= next, "GET {path}: headPosition behind nextAfter: {body}");
                }
            }
            events.extend(batch.iter().cloned());
            after = next;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited is fine: kill then fails and wait returns the saved status.
        let _ = self.run.child.kill();
        let _ = self.run.child.wait();
    }
}

/// `/aggregates/{aggregate}/events`.
pub fn events_path(aggregate: &str) -> String {
    format!("/aggregates/{aggregate}/events")
}

/// A fresh event id.
pub fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The string in `v`, or a test failure naming it.
#[track_caller]
pub fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// The unsigned integer in `v`, or a test failure naming it.
#[track_caller]
pub fn u64_of(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a non-negative integer, got {v}"))
}

/// An event's `globalPosition`.
#[track_caller]
pub fn position(event: &Value) -> u64 {
    u64_of(&event["globalPosition"])
}

/// The `globalPosition` of every event in a reply's `events`.
#[track_caller]
pub fn positions(reply: &Value) -> Vec<u64> {
    reply["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {reply}"))
        .iter()
        .map(position)
        .collect()
}

/// Fails unless `reply` is the documented error: this status, this code, and a non-empty message.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    let (got, body) = reply;
    assert_eq!(got.as_u16(), status, "status of {body}");
    assert_eq!(body["error"], code, "error code of {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
}

/// Fails unless the object `v` has exactly these keys.
#[track_caller]
pub fn assert_keys(v: &Value, expected: &[&str]) {
    let mut got: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    got.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(got, expected, "keys of {v}");
}

/// Fails unless `s` is an RFC 3339 UTC timestamp (`…Z`) within a few minutes of now.
///
/// That it always has exactly six fraction digits is [`assert_timestamp_micros`], checked over many events by
/// `append::timestamps_always_have_six_fraction_digits`: a formatter that trims trailing zeros then fails that one
/// test every time instead of one event in ten of every other test.
#[track_caller]
pub fn assert_timestamp(s: &str) {
    assert!(s.ends_with('Z'), "timestamp {s:?} is not UTC (`Z`)");
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("timestamp {s:?} does not parse as RFC 3339: {e}"));
    let skew = (time::OffsetDateTime::now_utc() - at).abs();
    assert!(
        skew < time::Duration::minutes(5),
        "timestamp {s} is {skew} away from now"
    );
}

/// Fails unless `s` is an RFC 3339 UTC timestamp with exactly microseconds: `2026-11-25T11:15:53.123450Z`.
#[track_caller]
pub fn assert_timestamp_micros(s: &str) {
    assert_timestamp(s);
    let shape: String = s.chars().map(|c| if c.is_ascii_digit() { 'd' } else { c }).collect();
    assert_eq!(
        shape, "dddd-dd-ddTdd:dd:dd.ddddddZ",
        "timestamp {s:?} does not have six fraction digits"
    );
}

/// Fails unless `s` is a UUID.
#[track_caller]
pub fn assert_uuid(s: &str) {
    assert!(uuid::Uuid::parse_str(s).is_ok(), "{s:?} is not a UUID");
}

/// The acknowledgements in a 2xx append reply (single or batch) for `aggregate`.
#[track_caller]
pub fn acks_of(aggregate: &str, body: &Value) -> Vec<Ack> {
    let one = |e: &Value| Ack {
        event_id: str_of(&e["eventId"]).to_string(),
        aggregate: aggregate.to_string(),
        version: u64_of(&e["version"]),
        position: position(e),
    };
    match body["events"].as_array() {
        Some(events) => events.iter().map(one).collect(),
        None => vec![one(body)],
    }
}

/// Fails unless `log` (a tenant's events in the order `GET /events` returned them) has positions exactly
/// `1..=len`, unique event ids, and for every aggregate versions `1..=n` in position order.
#[track_caller]
pub fn assert_log_consistent(log: &[Value]) {
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ids = HashSet::new();
    for (i, event) in log.iter().enumerate() {
        assert_eq!(
            position(event),
            i as u64 + 1,
            "global positions are not gapless 1..N at index {i}: {event}"
        );
        assert!(ids.insert(str_of(&event["eventId"])), "event id stored twice: {event}");
        let last = versions.entry(str_of(&event["aggregateId"])).or_default();
        assert_eq!(
            u64_of(&event["version"]),
            *last + 1,
            "versions not gapless in position order: {event}"
        );
        *last += 1;
    }
}

/// Fails unless every acknowledged event is in `log` at exactly its acknowledged position, aggregate and version.
#[track_caller]
pub fn assert_acks_stored(log: &[Value], acks: &[Ack]) {
    for ack in acks {
        let index = usize::try_from(ack.position).expect("position fits usize");
        let event = log
            .get(index.wrapping_sub(1))
            .unwrap_or_else(|| panic!("acknowledged {ack:?} is missing: the log has {} events", log.len()));
        let stored = Ack {
            event_id: str_of(&event["eventId"]).to_string(),
            aggregate: str_of(&event["aggregateId"]).to_string(),
            version: u64_of(&event["version"]),
            position: position(event),
        };
        assert_eq!(&stored, ack, "the event at an acknowledged position differs");
    }
}

/// Writers that append continuously (singles and batches, over private and shared aggregates, each event with an
/// id) until the server stops answering: a transport error or a 503 ends a writer.
pub struct Writers {
    acked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<(Vec<Ack>, Vec<Reply>)>>,
}

impl Writers {
    pub fn spawn(api: &Api, key: &str, count: usize) -> Writers {
        let acked = Arc::new(AtomicUsize::new(0));
        let tasks = (0..count)
            .map(|writer| {
                let (api, key, acked) = (api.clone(), key.to_string(), Arc::clone(&acked));
                tokio::spawn(async move { write_until_stopped(api, key, writer, acked).await })
            })
            .collect();
        Writers { acked, tasks }
    }

    /// Waits (with a deadline) until at least `n` events were acknowledged.
    pub async fn wait_for_acks(&self, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.acked.load(Ordering::SeqCst) < n {
            let acked = self.acked.load(Ordering::SeqCst);
            assert!(
                Instant::now() < deadline,
                "only {acked} of {n} appends acknowledged in time"
            );
            assert!(
                !self.tasks.iter().all(|t| t.is_finished()),
                "every writer stopped after {acked} of {n} appends"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for every writer to end; returns every acknowledgement and every non-2xx reply.
    pub async fn join(self) -> (Vec<Ack>, Vec<Reply>) {
        let mut acks = Vec::new();
        let mut refusals = Vec::new();
        for task in self.tasks {
            let (a, r) = task.await.expect("writer task");
            acks.extend(a);
            refusals.extend(r);
        }
        (acks, refusals)
    }
}

async fn write_until_stopped(api: Api, key: String, writer: usize, acked: Arc<AtomicUsize>) -> (Vec<Ack>, Vec<Reply>) {
    let deadline = Instant::now() + DEADLINE;
    let mut acks = Vec::new();
    for i in 0.. {
        assert!(Instant::now() < deadline, "writer {writer} was never stopped");
        let aggregate = if i % 5 == 0 {
            "shared-1".to_string()
        } else {
            format!("acct-w{writer}-{}", i % 3)
        };
        let event = |n: usize| json!({"eventType": "Written", "eventId": new_event_id(), "data": {"writer": writer, "i": i, "n": n}});
        let body = if i % 4 == 0 {
            json!({"events": [event(0), event(1), event(2)]})
        } else {
            event(0)
        };
        match api.try_append(&key, &aggregate, &body).await {
            Ok((status, reply)) if status.is_success() => {
                let new = acks_of(&aggregate, &reply);
                acked.fetch_add(new.len(), Ordering::SeqCst);
                acks.extend(new);
            }
            Ok(refused) => return (acks, vec![refused]),
            Err(_) => break,
        }
    }
    (acks, vec![])
}

/// A process and the threads copying its stdout and stderr into memory.
struct Run {
    child: Child,
    output: Arc<Mutex<Output>>,
    pumps: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Output {
    stdout: String,
    stderr: String,
}

impl Run {
    /// Spawns the server and waits for its `listening on http://ADDR` line; returns the run and `http://ADDR`.
    async fn start(launch: &Launch) -> (Run, String) {
        let mut cmd = Command::new(HAPND);
        cmd.args(&launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        clean_env(&mut cmd);
        cmd.envs(launch.envs.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("spawn hapnd");
        let output = Arc::new(Mutex::new(Output::default()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let pumps = vec![
            pump(stdout, Arc::clone(&output), |o| &mut o.stdout),
            pump(stderr, Arc::clone(&output), |o| &mut o.stderr),
        ];
        let mut run = Run { child, output, pumps };
        let deadline = Instant::now() + DEADLINE;
        loop {
            let stdout = run.stdout();
            let complete_lines = &stdout[..stdout.rfind('\n').map_or(0, |end| end + 1)];
            if let Some(url) = complete_lines.lines().find_map(|l| l.strip_prefix("listening on ")) {
                let url = url.trim_end();
                assert!(
                    url.starts_with("http://127.0.0.1:"),
                    "unexpected listening line {url:?}"
                );
                return (run, url.to_string());
            }
            if let Some(status) = run.child.try_wait().expect("poll hapnd") {
                run.join_pumps();
                panic!(
                    "hapnd {:?} exited with {status} before listening; stdout:\n{}\nstderr:\n{}",
                    launch.args,
                    run.stdout(),
                    run.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "hapnd did not print `listening on` in time; stderr:\n{}",
                run.stderr()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn stdout(&self) -> String {
        self.output.lock().expect("output lock").stdout.clone()
    }

    fn stderr(&self) -> String {
        self.output.lock().expect("output lock").stderr.clone()
    }

    /// After the process exited: waits until its output is fully copied.
    fn join_pumps(&mut self) {
        for pump in self.pumps.drain(..) {
            pump.join().expect("output pump thread");
        }
    }
}

/// Copies everything `from` yields into the field `pick` selects, until end of file.
fn pump(
    mut from: impl Read + Send + 'static,
    to: Arc<Mutex<Output>>,
    pick: fn(&mut Output) -> &mut String,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            pick(&mut to.lock().expect("output lock")).push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

/// The test's own environment must not configure the server behind a test's back.
fn clean_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HAPND_") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
}

/// The key from a `default tenant api key: KEY` line.
fn default_key_line(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("default tenant api key: "))
        .map(|k| k.trim().to_string())
}

/// A path as a command-line argument.
pub fn path_arg(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_string()
}

/// The sum of every sample of `name` (over all label sets) in a Prometheus text exposition.
pub fn sample_sum(metrics: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = match rest.chars().next()? {
                '{' => rest.rsplit_once('}')?.1,
                ' ' => rest,
                _ => return None, // another metric whose name starts with `name`
            };
            // "name value" or "name value timestamp".
            value.split_whitespace().next()?.parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
