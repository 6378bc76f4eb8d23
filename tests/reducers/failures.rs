//! A reducer that fails on the write path: it throws, loops forever or allocates without bound. The append gets a
//! 422 naming the failure, nothing of the request is stored, the snapshot is untouched, and the next append works.
//! A reducer stuck on one aggregate does not hold up appends to another.

use std::time::{Duration, Instant};

use crate::support::*;

/// The aggregate every scenario here writes to, after [`setup`].
const ORDER: &str = "order_1";

/// The faulty reducer bound to `order`, and `order_1` at version 2 with total 10; returns the reducer's id.
async fn setup(server: &Server) -> String {
    let key = &server.default_key;
    let ready = upload_ready(
        server,
        key,
        "FaultyOrderReducer.cs",
        &code("faulty_order.cs"),
        Some("order"),
    )
    .await;
    let reducer_id = str_of(&ready["reducerId"]).to_string();
    append_ok(server, key, ORDER, &order_placed("c1")).await;
    let added = append_ok(server, key, ORDER, &item_added("Widget", 10.0)).await;
    assert_order(&added["state"], Some("c1"), 10.0);
    reducer_id
}

/// Fails unless `order_1` still holds exactly its two events, at version 2, with total 10, and the tenant's log has
/// nothing of a refused request and no gap; then appends a normal event, which must work and build on that state.
async fn assert_untouched_and_alive(server: &Server, reducer_id: &str) {
    let key = &server.default_key;
    let events = server.read_stream(key, ORDER, 100).await;
    let types: Vec<&str> = events.iter().map(|e| str_of(&e["eventType"])).collect();
    assert_eq!(
        types,
        ["OrderPlaced", "ItemAdded"],
        "nothing of a refused request is stored"
    );
    let log = server.read_log(key, 1000).await;
    assert_log_consistent(&log);
    let refused = ["Explode", "Spin", "Hoard"];
    assert!(
        log.iter()
            .all(|e| !refused.contains(&str_of(&e["eventType"])) && e["data"]["item"] != "Nut"),
        "a refused request left events in the log"
    );
    let state = state_at(server, key, ORDER, 2, reducer_id).await;
    assert_order(&state, Some("c1"), 10.0);

    let next = append_ok(server, key, ORDER, &item_added("Gadget", 2.5)).await;
    assert_eq!(next["version"], 3, "{next}");
    assert_eq!(
        next["globalPosition"],
        log.len() as u64 + 1,
        "a refused request takes no position: {next}"
    );
    assert_order(&next["state"], Some("c1"), 12.5);
}

#[tokio::test]
async fn a_throwing_reducer_stores_nothing_and_the_next_append_works() {
    let server = start().await;
    let key = &server.default_key;
    let reducer_id = setup(&server).await;

    let reply = server.append(key, ORDER, &event("Explode")).await;
    assert_error(&reply, 422, "reducer_failed");
    let body = &reply.1;
    assert_eq!(body["reducerId"], reducer_id.as_str(), "{body}");
    assert_eq!(body["reason"], "exception", "{body}");
    assert_eq!(body["exceptionType"], "System.InvalidOperationException", "{body}");
    assert_eq!(body["version"], 3, "the failing event's version: {body}");
    assert!(str_of(&body["message"]).contains("explode on purpose"), "{body}");

    // In a batch, the events before the failing one are not stored either.
    let batch = json!({"events": [item_added("Nut", 1.0), item_added("Bolt", 2.0), event("Explode")]});
    let reply = server.append(key, ORDER, &batch).await;
    assert_error(&reply, 422, "reducer_failed");
    assert_eq!(
        reply.1["version"], 5,
        "the failing event is the batch's third: {}",
        reply.1
    );

    assert_untouched_and_alive(&server, &reducer_id).await;
}

#[tokio::test]
async fn a_looping_reducer_times_out_without_stalling_other_aggregates() {
    let server = start().await;
    let key = server.default_key.clone();
    let reducer_id = setup(&server).await;
    append_ok(&server, &key, "order_2", &order_placed("c2")).await;

    let batches_before = batches_run(&server).await;
    let spinning = {
        let api = server.api();
        let key = key.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = api.append(&key, ORDER, &event("Spin")).await;
            (reply, started.elapsed())
        })
    };
    // Appends that share the culprit's first batch wait for it once (`apply_queue.rs`), so the others start only
    // when its batch runs alone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while batches_run(&server).await == batches_before {
        assert!(Instant::now() < deadline, "the spinning append's batch never started");
        tokio::task::yield_now().await;
    }
    // While it spins, another aggregate of the same type keeps being served.
    let mut served = 0;
    let mut price = 0.0;
    while !spinning.is_finished() {
        let started = Instant::now();
        let added = append_ok(&server, &key, "order_2", &item_added("Widget", 1.0)).await;
        price += 1.0;
        assert_order(&added["state"], Some("c2"), price);
        if !spinning.is_finished() {
            served += 1;
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "an append to another aggregate waited {:?} behind the spinning reducer",
                started.elapsed()
            );
        }
    }
    let (reply, took) = spinning.await.expect("the spinning append's task");
    assert_error(&reply, 422, "reducer_timeout");
    assert_eq!(reply.1["reducerId"], reducer_id.as_str(), "{}", reply.1);
    assert!(
        took >= Duration::from_secs(5) - Duration::from_millis(100),
        "the deadline is 5 s, the answer came after {took:?}"
    );
    assert!(
        served >= 3,
        "only {served} appends to another aggregate were served while the reducer spun for {took:?}"
    );

    assert_untouched_and_alive(&server, &reducer_id).await;
}

#[tokio::test]
async fn a_reducer_that_allocates_without_bound_runs_out_of_memory_and_stores_nothing() {
    let server = start().await;
    let key = &server.default_key;
    let reducer_id = setup(&server).await;

    let reply = server.append(key, ORDER, &event("Hoard")).await;
    assert_error(&reply, 422, "reducer_failed");
    assert_eq!(reply.1["reason"], "out_of_memory", "{}", reply.1);
    assert_eq!(reply.1["reducerId"], reducer_id.as_str(), "{}", reply.1);

    assert_untouched_and_alive(&server, &reducer_id).await;
}

#[tokio::test]
async fn among_concurrent_appends_only_the_one_that_throws_fails() {
    let server = start().await;
    let key = server.default_key.clone();
    let reducer_id = setup(&server).await;
    // Appends to many aggregates at once share round trips to the worker; one of them throws.
    let aggregates: Vec<String> = (0..24).map(|n| format!("order_crowd{n}")).collect();
    for aggregate in &aggregates {
        append_ok(&server, &key, aggregate, &order_placed("c9")).await;
    }
    let sent: Vec<_> = aggregates
        .iter()
        .enumerate()
        .map(|(n, aggregate)| {
            let (api, key, aggregate) = (server.api(), key.clone(), aggregate.clone());
            let body = if n == 11 {
                event("Explode")
            } else {
                item_added("Widget", n as f64)
            };
            tokio::spawn(async move { api.append(&key, &aggregate, &body).await })
        })
        .collect();
    for (n, reply) in sent.into_iter().enumerate() {
        let reply = reply.await.expect("an append's task");
        if n == 11 {
            assert_error(&reply, 422, "reducer_failed");
            assert_eq!(reply.1["version"], 2, "its own event's version: {}", reply.1);
            assert_eq!(reply.1["reducerId"], reducer_id.as_str(), "{}", reply.1);
        } else {
            assert_eq!(reply.0, StatusCode::CREATED, "order_crowd{n}: {}", reply.1);
            assert_order(&reply.1["state"], Some("c9"), n as f64);
        }
    }
    let thrown = server.read_stream(&key, "order_crowd11", 10).await;
    assert_eq!(thrown.len(), 1, "nothing of the append that threw is stored");
    assert_untouched_and_alive(&server, &reducer_id).await;
}
