//! Every program in `tests/legit/` compiles and, run by the jailed worker over `NAME.events.json`, gives
//! `NAME.expected.json`: one event at a time, in one batch, and in a pipelined replay of small batches (the states
//! kept in the worker between them) alike. A reducer's expectation is its final state; a
//! projection's is an object of key → final state.

use std::collections::BTreeMap;

use hapnd_server::runtime::ArtifactKind;
use hapnd_server::runtime::protocol::{BatchStep, EncodedRows};
use serde_json::Value;

use crate::support::{compile_ok, compiler, fixtures, key, repo, stored_events, workers};

#[tokio::test]
async fn legitimate_programs_give_the_expected_state_through_the_jailed_worker() {
    let compiler = compiler().await;
    let workers = workers();
    let programs = fixtures("legit");
    assert!(
        programs.len() >= 10,
        "the issue asks for at least 10, found {}",
        programs.len()
    );
    for (name, text) in &programs {
        let stem = name.trim_end_matches(".cs");
        let read = |suffix: &str| {
            let path = repo().join("tests/legit").join(format!("{stem}.{suffix}"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        };
        let events = stored_events(&read("events.json"));
        let expected: Value = serde_json::from_str(&read("expected.json")).expect("expected JSON");
        let compiled = compile_ok(&compiler, name, text).await;
        let kind = compiled.artifact.kind;
        workers
            .register(compiled.artifact.clone())
            .expect("a signed artifact registers");
        let key = key("tenant-legit", &compiled);

        // One event per round trip, as appends do.
        let mut one_by_one: BTreeMap<String, Box<serde_json::value::RawValue>> = BTreeMap::new();
        for event in &events {
            let state_key = match kind {
                ArtifactKind::Reducer => Some(String::new()),
                ArtifactKind::Projection => workers.resolve_key(&key, &event.wire()).await.expect("resolveKey"),
            };
            let Some(state_key) = state_key else { continue };
            let state = one_by_one.get(&state_key).map(|s| &**s);
            let next = workers
                .apply(&key, state, &event.wire())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            one_by_one.insert(state_key, next);
        }

        // The whole stream in one batch, as a replay does.
        let wire: Vec<_> = events.iter().map(|e| e.wire()).collect();
        let keys: Vec<Option<String>> = match kind {
            ArtifactKind::Reducer => vec![Some(String::new()); wire.len()],
            ArtifactKind::Projection => workers.resolve_keys(&key, &wire).await.expect("resolveKeys"),
        };
        let steps: Vec<BatchStep> = wire
            .iter()
            .zip(&keys)
            .filter_map(|(event, k)| k.as_deref().map(|k| BatchStep { key: k, event }))
            .collect();
        let rows = EncodedRows::encode(&steps).expect("rows");
        let batched = workers
            .apply_batch(&key, BTreeMap::new(), &rows)
            .await
            .expect("applyBatch")
            .states;

        // A replay in batches of a few events, each sent while the worker runs the one before, the states kept in
        // the worker from batch to batch.
        let mut replay = workers.replay(&key, BTreeMap::new()).await.expect("replay");
        for chunk in steps.chunks(REPLAY_BATCH) {
            let rows = EncodedRows::encode(chunk).expect("rows");
            replay.push(&rows).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let replayed = replay.finish().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(replayed.events, steps.len() as u64, "{name}: every event replayed");

        let as_json = |states: &BTreeMap<String, Box<serde_json::value::RawValue>>| -> Value {
            let parsed: BTreeMap<&String, Value> = states
                .iter()
                .map(|(k, v)| (k, serde_json::from_str(v.get()).expect("state JSON")))
                .collect();
            match kind {
                ArtifactKind::Reducer => parsed.into_values().next().unwrap_or(Value::Null),
                ArtifactKind::Projection => serde_json::to_value(parsed).expect("a map"),
            }
        };
        assert_eq!(as_json(&one_by_one), expected, "{name}, one event at a time");
        assert_eq!(as_json(&batched), expected, "{name}, in one batch");
        assert_eq!(
            as_json(&replayed.states),
            expected,
            "{name}, in a pipelined replay of batches of {REPLAY_BATCH}"
        );
    }
}

/// Small enough that every fixture's replay has several batches, so several are in flight.
const REPLAY_BATCH: usize = 3;

#[tokio::test]
async fn the_issue_example_compiles_and_reports_what_it_found() {
    let compiler = compiler().await;
    let text = crate::support::issue_example();
    let compiled = compile_ok(&compiler, "OrderReducer.cs", &text).await;
    let artifact = &compiled.artifact;
    assert_eq!(artifact.kind, ArtifactKind::Reducer);
    assert_eq!(artifact.class_name, "OrderReducer");
    assert_eq!(artifact.identity, "OrderReducer");
    assert_eq!(artifact.state_type, "OrderState");
    assert_eq!(artifact.policy_hash, hapnd_policy::csharp::allowlist_hash());
    assert_eq!(artifact.address, hapnd_policy::signing::artifact_id(&artifact.dll));
    artifact
        .verify(&crate::support::signer().public_key())
        .expect("signed by the server");

    let again = compile_ok(&compiler, "OrderReducer.cs", &text).await;
    assert_eq!(
        again.artifact.dll, artifact.dll,
        "deterministic: the same upload gives the same bytes"
    );
}

#[tokio::test]
async fn a_projection_name_attribute_pins_the_identity() {
    let compiler = compiler().await;
    let text = r#"
[ProjectionName("orders-by-customer")]
public class ByCustomer : IProjection<int> {
    public string? ResolveKey(Event e) => e.AggregateId;
    public int Apply(int s, Event e) => s + 1;
}"#;
    let compiled = compile_ok(&compiler, "ByCustomer.cs", text).await;
    assert_eq!(compiled.artifact.kind, ArtifactKind::Projection);
    assert_eq!(compiled.artifact.identity, "orders-by-customer");
    assert_eq!(compiled.artifact.class_name, "ByCustomer");
}
