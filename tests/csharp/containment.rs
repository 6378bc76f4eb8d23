//! Uploads that pass the gates but misbehave at run time (`tests/containment/`, first line `// outcome: KIND`): each
//! is stopped by the jail with a typed failure, and the pool goes on serving other work.

use std::time::{Duration, Instant};

use hapnd_server::runtime::Failure;

use crate::support::{compile_ok, compiler, fixtures, key, one_event, workers};

#[tokio::test]
async fn misbehaving_code_is_stopped_with_a_typed_failure_and_the_pool_keeps_serving() {
    let compiler = compiler().await;
    let workers = workers();
    let programs = fixtures("containment");
    assert!(programs.len() >= 6, "{}", programs.len());

    let healthy_text = crate::support::issue_example();
    let healthy = compile_ok(&compiler, "OrderReducer.cs", &healthy_text).await;
    workers.register(healthy.artifact.clone()).expect("register");

    let mut runs = Vec::new();
    for (name, text) in &programs {
        let outcome = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("// outcome: "))
            .unwrap_or_else(|| panic!("{name}: the first line must be `// outcome: KIND`"))
            .trim()
            .to_owned();
        let compiled = compile_ok(&compiler, name, text).await;
        workers.register(compiled.artifact.clone()).expect("register");
        runs.push((name.clone(), outcome, key("tenant-containment", &compiled)));
    }

    // All at once: the deadlines run in parallel, and each jail is killed on its own.
    let go = one_event("Go");
    let started = Instant::now();
    let results = futures_util::future::join_all(runs.iter().map(|(_, _, key)| {
        let workers = &workers;
        let event = go[0].wire();
        async move {
            let began = Instant::now();
            let result = workers.apply(key, None, &event).await;
            (result, began.elapsed())
        }
    }))
    .await;
    for ((name, outcome, _), (result, took)) in runs.iter().zip(results) {
        let failure = result.expect_err(&format!("{name} must fail"));
        match (outcome.as_str(), &failure) {
            ("timeout", Failure::Timeout(limit)) => {
                assert_eq!(*limit, Duration::from_secs(5), "{name}");
                assert!(
                    took >= *limit && took < *limit + Duration::from_secs(3),
                    "{name}: stopped after {took:?}"
                );
                eprintln!("{name}: stopped {:?} after the 5 s deadline", took - *limit);
            }
            ("crash", Failure::Crashed(why)) => assert!(!why.is_empty(), "{name}"),
            ("outOfMemory", Failure::OutOfMemory) => {}
            (
                "userException",
                Failure::UserException {
                    exception_type,
                    message,
                    event_index,
                },
            ) => {
                assert_eq!(exception_type, "System.InvalidOperationException", "{name}");
                assert!(message.contains("Go"), "{name}: {message}");
                assert_eq!(*event_index, Some(0));
            }
            _ => panic!("{name}: expected {outcome}, got {failure:?}"),
        }
    }
    eprintln!("all contained in {:?}", started.elapsed());

    // The pool still serves: the healthy artifact answers, and so do fresh workers of the failed ones' keys.
    let placed = crate::support::stored_events(
        r#"[{"aggregateId":"order_1","eventType":"OrderPlaced","data":{"customerId":"c-1"}}]"#,
    );
    let state = workers
        .apply(&key("tenant-containment", &healthy), None, &placed[0].wire())
        .await
        .expect("a healthy artifact still runs");
    let state: serde_json::Value = serde_json::from_str(state.get()).expect("JSON");
    assert_eq!(state["customerId"], "c-1");
    let (thrower_key, thrower_outcome) = runs
        .iter()
        .find(|(_, outcome, _)| outcome == "userException")
        .map(|(_, outcome, key)| (key, outcome))
        .expect("a throwing fixture");
    let again = workers.apply(thrower_key, None, &one_event("Fine")[0].wire()).await;
    assert!(
        again.is_ok(),
        "{thrower_outcome}: a user exception leaves the worker serving: {again:?}"
    );
}
