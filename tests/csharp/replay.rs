//! Replays through the jailed worker, pipelined with the states kept in the worker between batches, when they go
//! wrong: a user exception names the replay's event and leaves the key's workers serving, a timeout stops the
//! worker, and a replay given up half-way leaves nothing behind for the next one. That a replay gives the same
//! states as one event at a time is checked on every legitimate program (`legit.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use hapnd_server::runtime::Failure;
use hapnd_server::runtime::protocol::{BatchStep, EncodedRows};
use hapnd_server::runtime::workers::{ArtifactWorkers, WorkerKey};

use crate::support::{StoredEvent, compile_ok, compiler, fixtures, key, stored_events, workers};

/// `types` as events of one aggregate, in batches of `per_batch` rows for the reducer's one state.
fn batches(types: &[&str], per_batch: usize) -> Vec<EncodedRows> {
    let events = events(types);
    let wire: Vec<_> = events.iter().map(StoredEvent::wire).collect();
    let steps: Vec<BatchStep> = wire.iter().map(|event| BatchStep { key: "", event }).collect();
    steps
        .chunks(per_batch)
        .map(|chunk| EncodedRows::encode(chunk).expect("rows"))
        .collect()
}

fn events(types: &[&str]) -> Vec<StoredEvent> {
    let written: Vec<String> = types
        .iter()
        .map(|t| format!(r#"{{"aggregateId":"probe_1","eventType":"{t}","data":{{}}}}"#))
        .collect();
    stored_events(&format!("[{}]", written.join(",")))
}

/// Pushes every batch and finishes: the reducer's final state, or the first failure wherever it surfaced.
async fn replay(
    workers: &ArtifactWorkers,
    key: &WorkerKey,
    batches: &[EncodedRows],
) -> Result<serde_json::Value, Failure> {
    let mut replay = workers.replay(key, BTreeMap::new()).await?;
    for rows in batches {
        replay.push(rows).await?;
    }
    let outcome = replay.finish().await?;
    let state = outcome.states.get("").expect("the reducer's state");
    Ok(serde_json::from_str(state.get()).expect("JSON"))
}

fn fixture(name: &str) -> String {
    fixtures("containment")
        .into_iter()
        .find(|(file, _)| file == name)
        .unwrap_or_else(|| panic!("tests/containment/{name}"))
        .1
}

#[tokio::test]
async fn a_user_exception_in_a_pipelined_replay_names_its_event_and_the_workers_serve_on() {
    let compiler = compiler().await;
    let workers = workers();
    let compiled = compile_ok(&compiler, "throws.cs", &fixture("throws.cs")).await;
    workers.register(compiled.artifact.clone()).expect("register");
    let key = key("tenant-replay", &compiled);

    // The fifth event throws; the batches after it were already sent when it did.
    let types = [
        "Fine", "Fine", "Fine", "Fine", "Go", "Fine", "Fine", "Fine", "Fine", "Fine",
    ];
    let failure = replay(&workers, &key, &batches(&types, 2))
        .await
        .expect_err("the replay fails");
    match &failure {
        Failure::UserException {
            exception_type,
            event_index,
            ..
        } => {
            assert_eq!(exception_type, "System.InvalidOperationException");
            assert_eq!(*event_index, Some(4), "counted from the replay's first event");
        }
        other => panic!("expected a user exception, got {other:?}"),
    }

    // The same key replays again, from scratch, with nothing left of the failed session.
    let state = replay(&workers, &key, &batches(&["Fine"; 7], 2))
        .await
        .expect("a replay");
    assert_eq!(state, serde_json::json!({ "seen": 7 }));
    let applied = workers
        .apply(&key, None, &events(&["Fine"])[0].wire())
        .await
        .expect("apply");
    assert_eq!(applied.get(), r#"{"seen":1}"#);
}

#[tokio::test]
async fn a_replay_past_its_deadline_is_stopped_and_one_given_up_half_way_leaves_nothing_behind() {
    let compiler = compiler().await;
    let workers = workers();
    let looping = compile_ok(&compiler, "infinite_loop.cs", &fixture("infinite_loop.cs")).await;
    workers.register(looping.artifact.clone()).expect("register");
    let looping_key = key("tenant-replay-deadline", &looping);
    let failure = replay(&workers, &looping_key, &batches(&["Go", "Go", "Go"], 1))
        .await
        .expect_err("stopped");
    assert_eq!(failure, Failure::Timeout(Duration::from_secs(5)));

    let counting = compile_ok(&compiler, "throws.cs", &fixture("throws.cs")).await;
    workers.register(counting.artifact.clone()).expect("register");
    let key = key("tenant-replay-dropped", &counting);
    let mut abandoned = workers.replay(&key, BTreeMap::new()).await.expect("replay");
    for rows in &batches(&["Fine"; 4], 2) {
        abandoned.push(rows).await.expect("push");
    }
    drop(abandoned);
    let state = replay(&workers, &key, &batches(&["Fine"; 3], 2))
        .await
        .expect("a replay");
    assert_eq!(
        state,
        serde_json::json!({ "seen": 3 }),
        "nothing of the abandoned replay"
    );
}
