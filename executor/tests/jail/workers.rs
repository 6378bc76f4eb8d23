//! Jailed workers over the framed protocol, and the warm pool.

use std::time::{Duration, Instant};

use hapnd_executor::worker::pool::PoolStats;
use hapnd_executor::worker::protocol::{DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION};
use hapnd_executor::{Outcome, Pool, PoolConfig, PoolError, ProtocolViolation, Worker, WorkerConfig, WorkerError};
use serde_json::value::RawValue;

use crate::support::{assert_no_jail_mount_on_the_host, sandbox, worker_spec};

/// A failed worker has been killed and reaped (no process, no zombie: its pid is gone) and its cgroup removed.
fn assert_left_nothing(pid: i32, cgroups: &[std::path::PathBuf]) {
    assert!(pid > 0 && !cgroups.is_empty());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "worker {pid} was reaped"
    );
    for dir in cgroups {
        assert!(!dir.exists(), "{} was removed", dir.display());
    }
}

/// Whether the worker `pid` is gone (reaped, so not even a zombie) and its cgroup directories removed.
fn left_nothing(pid: i32, cgroups: &[std::path::PathBuf]) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists() && cgroups.iter().all(|dir| !dir.exists())
}

/// Polls `condition` until it holds, for at most 10 s (workers are stopped in the background).
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: still not true after 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn body(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON")
}

/// `(pid, requests served)` as the test worker reports them.
async fn pid_and_count(worker: &mut Worker) -> (u64, u64) {
    let answer = worker.call(&body(r#"{"cmd":"pid"}"#)).await.expect("call").expect("ok");
    let value: serde_json::Value = serde_json::from_str(answer.get()).expect("json");
    (
        value["pid"].as_u64().expect("pid"),
        value["count"].as_u64().expect("count"),
    )
}

async fn start(args: &[&str]) -> Result<Worker, WorkerError> {
    Worker::start(&sandbox(), worker_spec(args), WorkerConfig::default()).await
}

#[tokio::test]
async fn a_worker_greets_answers_and_is_reused_across_requests() {
    let mut worker = start(&[]).await.expect("start");
    let answer = worker.call(&body(r#"{"cmd":"echo","n":[1,2,3]}"#)).await.expect("call");
    assert_eq!(answer.expect("ok").get(), r#"{"cmd":"echo","n":[1,2,3]}"#);

    let error = worker
        .call(&body(r#"{"cmd":"fail"}"#))
        .await
        .expect("a user error is an answer");
    let error = error.expect_err("the user's code failed");
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("user", "failed on purpose")
    );
    assert!(worker.is_healthy(), "a user error leaves the worker usable");

    // stderr is drained in the background, so a chatty worker does not block.
    worker
        .call(&body(r#"{"cmd":"stderr"}"#))
        .await
        .expect("call")
        .expect("ok");
    let (pid, count) = pid_and_count(&mut worker).await;
    assert_eq!(count, 4, "the same process served every request");
    assert_eq!(pid, 1, "the worker is pid 1 of its own pid namespace");
    assert_eq!(worker.served(), 4);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_wrong_protocol_version_or_a_silent_worker_is_refused_at_the_handshake() {
    let error = start(&["--hello-version", "2"]).await.expect_err("refused");
    assert!(
        matches!(
            &error,
            WorkerError::Protocol(ProtocolViolation::WrongVersion {
                worker: 2,
                supervisor: PROTOCOL_VERSION
            })
        ),
        "{error}"
    );

    let config = WorkerConfig {
        handshake_timeout: Duration::from_millis(500),
        ..WorkerConfig::default()
    };
    let error = Worker::start(&sandbox(), worker_spec(&["--no-hello"]), config)
        .await
        .expect_err("refused");
    let waited = Duration::from_millis(500);
    assert!(
        matches!(&error, WorkerError::Protocol(violation) if *violation == ProtocolViolation::NoHello { waited }),
        "{error}"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_kills_the_worker() {
    let mut spec = worker_spec(&[]);
    spec.limits.request_timeout = Duration::from_secs(1);
    let mut worker = Worker::start(&sandbox(), spec, WorkerConfig::default())
        .await
        .expect("start");
    let (pid, cgroups) = (worker.pid(), worker.cgroup_dirs());
    let started = std::time::Instant::now();
    let error = worker.call(&body(r#"{"cmd":"spin"}"#)).await.expect_err("timed out");
    assert!(
        matches!(error, WorkerError::Timeout(d) if d == Duration::from_secs(1)),
        "{error}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(!worker.is_healthy());
    assert_left_nothing(pid, &cgroups);
    assert!(matches!(worker.call(&body("{}")).await, Err(WorkerError::Broken)));
}

#[tokio::test]
async fn crashes_and_exits_are_reported_with_their_cause() {
    let mut worker = start(&[]).await.expect("start");
    let (pid, cgroups) = (worker.pid(), worker.cgroup_dirs());
    let error = worker.call(&body(r#"{"cmd":"crash"}"#)).await.expect_err("crashed");
    assert_left_nothing(pid, &cgroups);
    assert!(
        matches!(
            error,
            WorkerError::Crashed {
                outcome: Outcome::Signaled(libc::SIGSEGV),
                ..
            }
        ),
        "{error}"
    );

    let mut worker = start(&[]).await.expect("start");
    let error = worker.call(&body(r#"{"cmd":"exit"}"#)).await.expect_err("exited");
    assert!(
        matches!(
            error,
            WorkerError::Crashed {
                outcome: Outcome::Exited(7),
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_worker_over_its_memory_limit_is_reported_out_of_memory() {
    let mut spec = worker_spec(&[]);
    spec.limits.memory_bytes = 64 * 1024 * 1024;
    let mut worker = Worker::start(&sandbox(), spec, WorkerConfig::default())
        .await
        .expect("start");
    let error = worker.call(&body(r#"{"cmd":"alloc"}"#)).await.expect_err("killed");
    assert!(matches!(error, WorkerError::OutOfMemory), "{error}");
}

#[tokio::test]
async fn garbage_oversized_truncated_and_misaddressed_frames_discard_the_worker_with_a_typed_reason() {
    type IsExpected = fn(&ProtocolViolation) -> bool;
    let expected: [(&str, IsExpected); 5] = [
        (
            "garbage",
            |v| matches!(v, ProtocolViolation::Garbage(detail) if detail.contains("nope!")),
        ),
        ("huge", |v| {
            *v == ProtocolViolation::TooLarge {
                length: 0x7fff_ffff,
                cap: DEFAULT_MAX_FRAME_BYTES,
            }
        }),
        ("truncated", |v| *v == ProtocolViolation::Truncated),
        // The worker's requests are numbered from 1: this is the first.
        ("wrong-id", |v| {
            *v == ProtocolViolation::WrongId { asked: 1, answered: 2 }
        }),
        ("neither", |v| *v == ProtocolViolation::AmbiguousResponse),
    ];
    for (command, is_expected) in expected {
        let mut worker = start(&[]).await.expect("start");
        let (pid, cgroups) = (worker.pid(), worker.cgroup_dirs());
        let error = worker
            .call(&body(&format!(r#"{{"cmd":"{command}"}}"#)))
            .await
            .expect_err("a protocol violation");
        assert!(
            matches!(&error, WorkerError::Protocol(violation) if is_expected(violation)),
            "{command}: {error:?}"
        );
        assert!(!worker.is_healthy());
        assert_left_nothing(pid, &cgroups);
        assert!(matches!(worker.call(&body("{}")).await, Err(WorkerError::Broken)));
    }
}

fn pool(config: PoolConfig) -> Pool<String> {
    Pool::new(sandbox(), config, |_key: &String| worker_spec(&[]))
}

async fn pooled_pid(pool: &Pool<String>, key: &str) -> (u64, u64) {
    let answer = pool
        .call(&key.to_owned(), &body(r#"{"cmd":"pid"}"#))
        .await
        .expect("call")
        .expect("ok");
    let value: serde_json::Value = serde_json::from_str(answer.get()).expect("json");
    (
        value["pid"].as_u64().expect("pid"),
        value["count"].as_u64().expect("count"),
    )
}

/// The worker's host pid, which tells workers apart (inside, every worker is pid 1).
async fn host_pid(pool: &Pool<String>, key: &str) -> i32 {
    pool.acquire(&key.to_owned()).await.expect("acquire").pid()
}

#[tokio::test]
async fn the_pool_reuses_a_worker_and_replaces_a_failed_one() {
    let pool = pool(PoolConfig {
        ready_per_key: 0,
        ..PoolConfig::default()
    });
    let key = "tenant-a".to_owned();
    assert_eq!(pooled_pid(&pool, &key).await.1, 1);
    assert_eq!(
        pooled_pid(&pool, &key).await.1,
        2,
        "the second request went to the same warm worker"
    );
    let first = host_pid(&pool, &key).await;

    let crashed = pool.call(&key, &body(r#"{"cmd":"crash"}"#)).await;
    assert!(matches!(crashed, Err(PoolError::Worker(WorkerError::Crashed { .. }))));
    assert_eq!(pool.stats(&key).live, 0, "the failed worker is gone");
    let second = host_pid(&pool, &key).await;
    assert_ne!(first, second, "a new worker took its place");
    assert_eq!(pooled_pid(&pool, &key).await.1, 1, "the new worker's first request");
    assert_eq!(pooled_pid(&pool, &key).await.1, 2, "and it is reused in turn");
}

#[tokio::test]
async fn prewarmed_workers_are_ready_and_idle_ones_are_evicted() {
    let pool = pool(PoolConfig {
        ready_per_key: 2,
        ..PoolConfig::default()
    });
    let key = "tenant-b".to_owned();
    pool.prewarm(&key).await;
    assert_eq!(
        pool.stats(&key),
        PoolStats {
            idle: 2,
            live: 2,
            total: 2,
            waiting: 0
        }
    );
    pool.evict_idle_older_than(Duration::ZERO);
    assert_eq!(
        pool.stats(&key),
        PoolStats {
            idle: 0,
            live: 0,
            total: 0,
            waiting: 0
        }
    );
}

#[tokio::test]
async fn keys_never_share_workers_and_the_global_cap_evicts_the_least_recently_used() {
    let pool = pool(PoolConfig {
        ready_per_key: 0,
        max_total: 2,
        ..PoolConfig::default()
    });
    let (a, b, c) = ("a".to_owned(), "b".to_owned(), "c".to_owned());
    let pid_a = host_pid(&pool, &a).await;
    let pid_b = host_pid(&pool, &b).await;
    assert_ne!(pid_a, pid_b, "each key has its own worker");
    assert_eq!(host_pid(&pool, &b).await, pid_b, "b's worker serves b again");
    assert_eq!(pool.stats(&a).total, 2);

    // At the cap, c takes the place of a's worker, the least recently used.
    let pid_c = host_pid(&pool, &c).await;
    assert!(pid_c != pid_a && pid_c != pid_b);
    assert_eq!(pool.stats(&a).live, 0);
    assert_eq!(pool.stats(&b).live, 1);
    assert_eq!(pool.stats(&c).live, 1);
    assert_eq!(pool.stats(&c).total, 2);
}

#[tokio::test]
async fn a_busy_pool_at_its_cap_makes_callers_wait_then_gives_up() {
    let pool = pool(PoolConfig {
        ready_per_key: 0,
        max_per_key: 1,
        acquire_timeout: Duration::from_millis(300),
        ..PoolConfig::default()
    });
    let key = "busy".to_owned();
    let held = pool.acquire(&key).await.expect("the only worker");
    let waited = pool.acquire(&key).await;
    assert!(matches!(waited, Err(PoolError::Exhausted(_))));
    let pid = held.pid();
    drop(held);
    assert_eq!(pool.acquire(&key).await.expect("free again").pid(), pid);
}

#[tokio::test]
async fn a_worker_given_back_goes_to_the_oldest_waiting_caller_and_skips_ones_that_gave_up() {
    let pool = pool(PoolConfig {
        ready_per_key: 0,
        max_per_key: 1,
        acquire_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    });
    let key = "queue".to_owned();
    let held = pool.acquire(&key).await.expect("the only worker");
    let pid = held.pid();
    let (order, mut served) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    let mut quitter = None;
    for n in 0..7 {
        let (turn_pool, turn_key, order) = (pool.clone(), key.clone(), order.clone());
        let waiter = tokio::spawn(async move {
            let mut worker = turn_pool.acquire(&turn_key).await.expect("a turn");
            worker.call(&body(r#"{"cmd":"pid"}"#)).await.expect("call").expect("ok");
            // Reported while still holding the worker, so the order of reports is the order of turns.
            order.send((n, worker.pid())).expect("report");
        });
        // Queued one after the other, so the queue's order is known.
        eventually("the caller queues", || pool.stats(&key).waiting == n + 1).await;
        if n == 3 {
            quitter = Some(waiter);
        } else {
            waiters.push(waiter);
        }
    }
    // The fourth caller gives up while it waits: its turn passes to the next one.
    let quitter = quitter.expect("the fourth caller");
    quitter.abort();
    assert!(quitter.await.expect_err("aborted").is_cancelled());
    drop(held);
    for waiter in waiters {
        waiter.await.expect("a waiter");
    }
    drop(order);
    let mut turns = Vec::new();
    while let Some((n, worker_pid)) = served.recv().await {
        assert_eq!(worker_pid, pid, "the one worker served everybody");
        turns.push(n);
    }
    assert_eq!(
        turns,
        [0, 1, 2, 4, 5, 6],
        "first come, first served; the caller that gave up is skipped"
    );
    assert_eq!(
        pool.stats(&key),
        PoolStats {
            idle: 1,
            live: 1,
            total: 1,
            waiting: 0
        },
        "the worker is back, once"
    );
}

#[tokio::test]
async fn a_caller_that_comes_while_the_only_worker_starts_gets_it() {
    let pool = pool(PoolConfig {
        ready_per_key: 1,
        max_per_key: 1,
        acquire_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    });
    let key = "warming".to_owned();
    let warming = {
        let (pool, key) = (pool.clone(), key.clone());
        tokio::spawn(async move { pool.prewarm(&key).await })
    };
    eventually("the worker is starting", || pool.stats(&key).live == 1).await;
    // The key is at its most while its worker starts: this caller waits for that worker, not for a timeout.
    let worker = tokio::time::timeout(Duration::from_secs(20), pool.acquire(&key))
        .await
        .expect("handed the started worker long before the acquire timeout")
        .expect("a worker");
    assert!(worker.is_healthy());
    warming.await.expect("prewarm");
}

#[tokio::test]
async fn every_new_worker_answers_its_key_setup_before_it_serves() {
    // The key "bad" has a setup the worker refuses; "good" one it answers (pid counts it as request 1).
    let pool = Pool::with_setup(
        sandbox(),
        PoolConfig {
            ready_per_key: 0,
            ..PoolConfig::default()
        },
        |_key: &String| worker_spec(&[]),
        |key: &String| {
            let command = if key == "bad" { "fail" } else { "pid" };
            Some(body(&format!(r#"{{"cmd":"{command}"}}"#)))
        },
    );
    assert_eq!(
        pooled_pid(&pool, "good").await.1,
        2,
        "the setup was the worker's first request"
    );
    let refused = pool.call(&"bad".to_owned(), &body(r#"{"cmd":"pid"}"#)).await;
    assert!(
        matches!(&refused, Err(PoolError::Worker(WorkerError::Setup(e))) if e.kind == "user"),
        "{refused:?}"
    );
    assert_eq!(pool.stats(&"bad".to_owned()).live, 0, "the refusing worker is gone");
}

#[tokio::test]
async fn a_worker_whose_caller_gave_up_mid_request_never_serves_again() {
    // See: issue 3 (cancel-safety). The caller's future is dropped while the worker is still busy with the request.
    let mut worker = start(&[]).await.expect("start");
    let (pid, cgroups) = (worker.pid(), worker.cgroup_dirs());
    let abandoned = tokio::time::timeout(Duration::from_millis(200), worker.call(&body(r#"{"cmd":"sleep"}"#))).await;
    assert!(abandoned.is_err(), "the caller gave up before the answer");
    assert!(!worker.is_healthy(), "a worker that owes an answer is not healthy");

    // Its next frame would be the sleep's answer: rather than take it for this request's, the worker is killed.
    let error = worker.call(&body(r#"{"cmd":"pid"}"#)).await.expect_err("refused");
    assert!(matches!(error, WorkerError::Broken), "{error}");
    assert_left_nothing(pid, &cgroups);
}

#[tokio::test]
async fn a_cancelled_pool_call_does_not_hand_its_busy_worker_to_the_next_caller() {
    // See: issue 3 (cancel-safety). One worker per key, so the next caller can only be served if the abandoned
    // worker's slot was given back, and only correctly if that worker was not parked again.
    let pool = pool(PoolConfig {
        ready_per_key: 0,
        max_per_key: 1,
        ..PoolConfig::default()
    });
    let key = "cancelled".to_owned();
    for cancel_through in ["Pool::call", "PooledWorker::call"] {
        let worker = pool.acquire(&key).await.expect("acquire");
        let (first, cgroups) = (worker.pid(), worker.cgroup_dirs());
        drop(worker);

        let sleep = body(r#"{"cmd":"sleep"}"#);
        let short = Duration::from_millis(200);
        if cancel_through == "Pool::call" {
            let abandoned = tokio::time::timeout(short, pool.call(&key, &sleep)).await;
            assert!(abandoned.is_err(), "{cancel_through}: the caller gave up");
        } else {
            let mut worker = pool.acquire(&key).await.expect("acquire");
            assert_eq!(worker.pid(), first, "the idle worker is reused");
            let abandoned = tokio::time::timeout(short, worker.call(&sleep)).await;
            assert!(abandoned.is_err(), "{cancel_through}: the caller gave up");
            assert!(!worker.is_healthy());
        }
        assert_eq!(
            pool.stats(&key).live,
            0,
            "{cancel_through}: the busy worker left the pool"
        );

        // The sleep answers after 60 s and a request times out after 5 s: a prompt, correct answer can only come
        // from a fresh worker.
        let asked = Instant::now();
        let mut next = pool.acquire(&key).await.expect("acquire");
        assert_ne!(
            next.pid(),
            first,
            "{cancel_through}: a different worker serves the next call"
        );
        let answer = next.call(&body(r#"{"cmd":"pid"}"#)).await.expect("call").expect("ok");
        let value: serde_json::Value = serde_json::from_str(answer.get()).expect("json");
        assert_eq!(
            value["count"], 1,
            "{cancel_through}: the answer is to this request: {value}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{cancel_through}: served promptly, in {:?}",
            asked.elapsed()
        );
        drop(next);
        eventually(
            &format!("{cancel_through}: the abandoned worker is killed and reaped"),
            || left_nothing(first, &cgroups),
        )
        .await;
        // The next round starts from the worker that answered.
        pool.evict_idle_older_than(Duration::ZERO);
    }
}

#[tokio::test]
async fn with_a_ready_worker_per_key_a_failed_worker_is_replaced_in_the_background() {
    let pool = pool(PoolConfig {
        ready_per_key: 1,
        max_per_key: 1,
        ..PoolConfig::default()
    });
    let key = "replaced".to_owned();
    pool.prewarm(&key).await;
    assert_eq!(
        pool.stats(&key),
        PoolStats {
            idle: 1,
            live: 1,
            total: 1,
            waiting: 0
        }
    );
    let mut worker = pool.acquire(&key).await.expect("acquire");
    let (failed, cgroups) = (worker.pid(), worker.cgroup_dirs());
    let crashed = worker.call(&body(r#"{"cmd":"crash"}"#)).await;
    assert!(matches!(crashed, Err(WorkerError::Crashed { .. })), "{crashed:?}");
    drop(worker);
    assert_left_nothing(failed, &cgroups);

    // Nobody asks for a worker: the pool starts the replacement by itself.
    eventually("a replacement is ready", || {
        pool.stats(&key)
            == PoolStats {
                idle: 1,
                live: 1,
                total: 1,
                waiting: 0,
            }
    })
    .await;
    let mut replacement = pool.acquire(&key).await.expect("acquire");
    assert_ne!(replacement.pid(), failed);
    let answer = replacement
        .call(&body(r#"{"cmd":"pid"}"#))
        .await
        .expect("call")
        .expect("ok");
    let value: serde_json::Value = serde_json::from_str(answer.get()).expect("json");
    assert_eq!(value["count"], 1, "the replacement's first request: {value}");
}

#[tokio::test]
async fn evicted_and_shut_down_workers_leave_no_process_or_cgroup_behind() {
    let pool = pool(PoolConfig {
        ready_per_key: 0,
        max_total: 2,
        ..PoolConfig::default()
    });
    let (a, b, c) = ("a".to_owned(), "b".to_owned(), "c".to_owned());
    let mut workers = Vec::new();
    for key in [&a, &b] {
        let worker = pool.acquire(key).await.expect("acquire");
        workers.push((worker.pid(), worker.cgroup_dirs()));
    }
    assert!(workers.iter().all(|(pid, cgroups)| !left_nothing(*pid, cgroups)));

    // At the global cap, c's worker takes the place of a's, the least recently used.
    let worker_c = pool.acquire(&c).await.expect("acquire");
    let c_worker = (worker_c.pid(), worker_c.cgroup_dirs());
    drop(worker_c);
    let (pid_a, cgroups_a) = &workers[0];
    eventually("the LRU-evicted worker is gone", || left_nothing(*pid_a, cgroups_a)).await;

    // Idle eviction stops b's and c's.
    pool.evict_idle_older_than(Duration::ZERO);
    assert_eq!(pool.stats(&b).total, 0);
    let (pid_b, cgroups_b) = &workers[1];
    eventually("idle-evicted workers are gone", || {
        left_nothing(*pid_b, cgroups_b) && left_nothing(c_worker.0, &c_worker.1)
    })
    .await;

    // Shutting down: dropping the pool stops the workers it still holds.
    let worker = pool.acquire(&a).await.expect("acquire");
    let last = (worker.pid(), worker.cgroup_dirs());
    drop(worker);
    assert_eq!(pool.stats(&a).idle, 1);
    drop(pool);
    eventually("the dropped pool's worker is gone", || left_nothing(last.0, &last.1)).await;

    // And a worker shut down directly.
    let worker = start(&[]).await.expect("start");
    let (pid, cgroups) = (worker.pid(), worker.cgroup_dirs());
    worker.shutdown().await;
    assert_left_nothing(pid, &cgroups);
    assert_no_jail_mount_on_the_host();
}

/// The echo answer's `n`, which tells the answers of pipelined requests apart.
fn echoed_n(answer: &RawValue) -> u64 {
    let value: serde_json::Value = serde_json::from_str(answer.get()).expect("json");
    value["n"].as_u64().expect("n")
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_even_when_their_frames_outgrow_the_pipe() {
    let config = WorkerConfig {
        max_in_flight: 3,
        ..WorkerConfig::default()
    };
    let mut worker = Worker::start(&sandbox(), worker_spec(&[]), config)
        .await
        .expect("start");
    assert!(matches!(worker.receive().await, Err(WorkerError::NothingInFlight)));

    // The first frame is larger than the pipe (1 MiB), so its end and the frames behind it go through the writer
    // task while the worker is still reading; the answers still come back whole and in order.
    let padding = "x".repeat(3 * 1024 * 1024);
    let mut sent = Vec::new();
    for n in 1..=3 {
        let padded = if n == 1 { padding.as_str() } else { "" };
        let request = body(&format!(r#"{{"cmd":"echo","n":{n},"pad":"{padded}"}}"#));
        sent.push(worker.send(&request).await.expect("send"));
    }
    assert_eq!(worker.in_flight(), 3);
    let refused = worker.send(&body(r#"{"cmd":"echo","n":4}"#)).await;
    assert!(
        matches!(refused, Err(WorkerError::TooManyInFlight { limit: 3 })),
        "{refused:?}"
    );
    assert!(
        !worker.is_healthy(),
        "a worker that owes answers does not go back to a pool"
    );
    for (expected, n) in sent.iter().zip(1..) {
        let (id, answer) = worker.receive().await.expect("receive");
        assert_eq!((id, echoed_n(&answer.expect("ok"))), (*expected, n));
    }
    assert!(worker.is_healthy(), "every answer received");
    assert!(matches!(worker.receive().await, Err(WorkerError::NothingInFlight)));

    // Sending again while the answers are taken: a window of two, as a replay keeps it.
    worker.send(&body(r#"{"cmd":"echo","n":1}"#)).await.expect("send");
    for n in 2..=50 {
        worker
            .send(&body(&format!(r#"{{"cmd":"echo","n":{n}}}"#)))
            .await
            .expect("send");
        let (_, answer) = worker.receive().await.expect("receive");
        assert_eq!(echoed_n(&answer.expect("ok")), n - 1);
    }
    let (_, answer) = worker.receive().await.expect("receive");
    assert_eq!(echoed_n(&answer.expect("ok")), 50);
    assert_eq!(worker.served(), 53);

    // A plain call with answers owed would take another request's answer for its own: the worker is killed.
    let (pid, cgroups) = (worker.pid(), worker.cgroup_dirs());
    worker.send(&body(r#"{"cmd":"pid"}"#)).await.expect("send");
    let error = worker.call(&body(r#"{"cmd":"pid"}"#)).await.expect_err("refused");
    assert!(matches!(error, WorkerError::Broken), "{error}");
    assert_left_nothing(pid, &cgroups);
}

#[tokio::test]
async fn a_pipelined_request_has_its_whole_deadline_from_when_the_worker_could_start_it() {
    // Each nap takes 1.2 s of a 2 s deadline. The second was sent with the first, so it is answered 2.4 s after it
    // was sent, but only 1.2 s after the worker could start it: on time.
    let mut spec = worker_spec(&[]);
    spec.limits.request_timeout = Duration::from_secs(2);
    let mut worker = Worker::start(&sandbox(), spec, WorkerConfig::default())
        .await
        .expect("start");
    let started = Instant::now();
    for n in 1..=2 {
        worker
            .send(&body(&format!(r#"{{"cmd":"nap","n":{n}}}"#)))
            .await
            .expect("send");
    }
    for n in 1..=2 {
        let (_, answer) = worker.receive().await.expect("on time");
        assert_eq!(echoed_n(&answer.expect("ok")), n);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2400),
        "{:?}",
        started.elapsed()
    );
    assert!(worker.is_healthy());
}

#[tokio::test]
async fn a_timeout_with_requests_in_flight_kills_the_worker_and_fails_what_it_owed() {
    let mut spec = worker_spec(&[]);
    spec.limits.request_timeout = Duration::from_secs(1);
    let mut worker = Worker::start(&sandbox(), spec, WorkerConfig::default())
        .await
        .expect("start");
    let (pid, cgroups) = (worker.pid(), worker.cgroup_dirs());
    for command in ["pid", "spin", "pid"] {
        worker
            .send(&body(&format!(r#"{{"cmd":"{command}"}}"#)))
            .await
            .expect("send");
    }
    let (_, first) = worker.receive().await.expect("the first answers");
    assert!(first.is_ok());
    let started = Instant::now();
    let error = worker.receive().await.expect_err("the spin times out");
    assert!(
        matches!(error, WorkerError::Timeout(d) if d == Duration::from_secs(1)),
        "{error}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(!worker.is_healthy());
    assert_left_nothing(pid, &cgroups);
    assert!(matches!(worker.receive().await, Err(WorkerError::Broken)));
    assert!(matches!(worker.send(&body("{}")).await, Err(WorkerError::Broken)));
}

#[tokio::test]
async fn a_pooled_worker_never_goes_back_with_an_answer_unread() {
    // See: issue 4 (pipelining). One worker per key: the next caller gets a fresh worker only if the one that still
    // owed answers was discarded, and its first answer proves it.
    let pool = pool(PoolConfig {
        ready_per_key: 0,
        max_per_key: 1,
        ..PoolConfig::default()
    });
    let key = "pipelined".to_owned();
    for how in ["answers unread", "receive cancelled", "discarded"] {
        let mut worker = pool.acquire(&key).await.expect("acquire");
        let (first, cgroups) = (worker.pid(), worker.cgroup_dirs());
        match how {
            "answers unread" => {
                worker.send(&body(r#"{"cmd":"pid"}"#)).await.expect("send");
                worker.send(&body(r#"{"cmd":"pid"}"#)).await.expect("send");
                let (_, answer) = worker.receive().await.expect("receive");
                assert!(answer.is_ok());
                assert_eq!(worker.in_flight(), 1);
                drop(worker);
            }
            "receive cancelled" => {
                worker.send(&body(r#"{"cmd":"sleep"}"#)).await.expect("send");
                let abandoned = tokio::time::timeout(Duration::from_millis(200), worker.receive()).await;
                assert!(abandoned.is_err(), "the caller gave up");
                assert!(!worker.is_healthy());
                drop(worker);
            }
            _ => {
                // Healthy, but its caller left state in it.
                let answer = worker.call(&body(r#"{"cmd":"pid"}"#)).await.expect("call");
                assert!(answer.is_ok() && worker.is_healthy());
                worker.discard();
            }
        }
        assert_eq!(pool.stats(&key).live, 0, "{how}: the worker left the pool");
        let mut next = pool.acquire(&key).await.expect("acquire");
        assert_ne!(next.pid(), first, "{how}: a different worker serves the next caller");
        let answer = next.call(&body(r#"{"cmd":"pid"}"#)).await.expect("call").expect("ok");
        let value: serde_json::Value = serde_json::from_str(answer.get()).expect("json");
        assert_eq!(value["count"], 1, "{how}: the answer is to this request: {value}");
        drop(next);
        eventually(&format!("{how}: the old worker is killed and reaped"), || {
            left_nothing(first, &cgroups)
        })
        .await;
        pool.evict_idle_older_than(Duration::ZERO);
    }
}
