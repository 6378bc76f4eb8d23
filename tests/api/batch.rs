//! Appending a batch: the response, per-event ids, and atomicity (a refused batch stores nothing).

use crate::harness::*;

const BATCH_KEYS: &[&str] = &["startVersion", "endVersion", "aggregateType", "events"];
const BATCH_EVENT_KEYS: &[&str] = &["eventId", "version", "globalPosition"];

#[tokio::test]
async fn batch_append_returns_start_end_and_each_event() {
    let server = Server::start().await;
    let key = &server.default_key;
    let first = new_event_id();
    let body = json!({"events": [
        {"eventType": "OrderPlaced", "data": {}, "eventId": first},
        {"eventType": "ItemAdded", "data": {"price": 5}},
        {"eventType": "ItemAdded", "data": {"price": 7}},
    ]});
    let (status, reply) = server.append(key, "order_7", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_keys(&reply, BATCH_KEYS);
    assert_eq!(
        (reply["startVersion"].clone(), reply["endVersion"].clone()),
        (json!(1), json!(3)),
        "{reply}"
    );
    assert_eq!(reply["aggregateType"], "order");
    let events = reply["events"].as_array().expect("events is an array");
    assert_eq!(events.len(), 3, "{reply}");
    for (i, event) in events.iter().enumerate() {
        assert_keys(event, BATCH_EVENT_KEYS);
        assert_eq!(event["version"], i + 1, "{reply}");
        assert_eq!(event["globalPosition"], i + 1, "{reply}");
        assert_uuid(str_of(&event["eventId"]));
    }
    assert_eq!(events[0]["eventId"], first);
    assert_ne!(events[1]["eventId"], events[2]["eventId"]);

    // A second batch continues the versions and positions.
    let body = json!({"events": [{"eventType": "Paid", "data": {}}, {"eventType": "Shipped", "data": {}}]});
    let (status, reply) = server.append(key, "order_7", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(
        (reply["startVersion"].clone(), reply["endVersion"].clone()),
        (json!(4), json!(5)),
        "{reply}"
    );
    assert_eq!(positions(&reply), [4, 5]);

    // Read back in order, with the acknowledged ids.
    let stored = server.read_stream(key, "order_7", 100).await;
    let types: Vec<&str> = stored.iter().map(|e| str_of(&e["eventType"])).collect();
    assert_eq!(types, ["OrderPlaced", "ItemAdded", "ItemAdded", "Paid", "Shipped"]);
    assert_eq!(stored[1]["data"], json!({"price": 5}));
    assert_eq!(stored[2]["data"], json!({"price": 7}));
    let acked: Vec<Value> = events
        .iter()
        .chain(reply["events"].as_array().expect("events"))
        .map(|e| e["eventId"].clone())
        .collect();
    let ids: Vec<Value> = stored.iter().map(|e| e["eventId"].clone()).collect();
    assert_eq!(ids, acked);
    for event in &stored {
        assert_timestamp(str_of(&event["timestamp"]));
    }
}

#[tokio::test]
async fn batch_of_one_uses_the_batch_shape() {
    let server = Server::start().await;
    let (status, reply) = server
        .append(
            &server.default_key,
            "cart-9",
            &json!({"events": [{"eventType": "Opened", "data": {}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_keys(&reply, BATCH_KEYS);
    assert_eq!(
        (reply["startVersion"].clone(), reply["endVersion"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(reply["aggregateType"], "cart");
}

#[tokio::test]
async fn per_event_correlation_and_causation_win_over_request_level() {
    let server = Server::start().await;
    let key = &server.default_key;
    let body = json!({
        "correlationId": "req-corr",
        "events": [
            {"eventType": "A", "data": {}, "correlationId": "own-corr", "causationId": "own-cause"},
            {"eventType": "B", "data": {}},
        ],
    });
    let (status, reply) = server
        .post_json_with(key, &events_path("order_3"), &body, &[("Causation-Id", "req-cause")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    let events = server.read_stream(key, "order_3", 100).await;
    assert_eq!(
        (events[0]["correlationId"].clone(), events[0]["causationId"].clone()),
        (json!("own-corr"), json!("own-cause"))
    );
    assert_eq!(
        (events[1]["correlationId"].clone(), events[1]["causationId"].clone()),
        (json!("req-corr"), json!("req-cause"))
    );
}

#[tokio::test]
async fn batch_with_one_invalid_event_stores_nothing() {
    let server = Server::start_with(&["--max-event-bytes", "1024"]).await;
    let key = &server.default_key;
    let good = || json!({"eventType": "Good", "data": {"n": 1}});
    let refused: Vec<(Value, u16, &str)> = vec![
        (json!({"eventType": "bad type", "data": {}}), 400, "invalid_event_type"),
        (json!({"eventType": "X", "data": "not an object"}), 400, "invalid_field"),
        (
            json!({"eventType": "X", "data": {}, "metadata": 5}),
            400,
            "invalid_field",
        ),
        (
            json!({"eventType": "X", "data": {}, "eventId": "not-a-uuid"}),
            400,
            "invalid_event_id",
        ),
        (
            json!({"eventType": "X", "data": {}, "correlationId": ""}),
            400,
            "invalid_field",
        ),
        (
            json!({"eventType": "X", "data": {"blob": "x".repeat(2048)}}),
            413,
            "event_too_large",
        ),
    ];

    // On a new aggregate: it must still not exist afterwards.
    for (bad, status, code) in &refused {
        let body = json!({"events": [good(), bad, good()]});
        let reply = server.append(key, "order_new", &body).await;
        assert_error(&reply, *status, code);
    }
    assert_error(
        &server.get(key, &events_path("order_new")).await,
        404,
        "aggregate_not_found",
    );
    assert!(
        server.read_log(key, 100).await.is_empty(),
        "a refused batch left events in the log"
    );

    // On an existing aggregate: its version does not move.
    let (status, reply) = server.append(key, "order_old", &good()).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    for (bad, status, code) in &refused {
        let body = json!({"events": [good(), good(), bad]});
        assert_error(&server.append(key, "order_old", &body).await, *status, code);
    }
    let (status, reply) = server.get(key, &events_path("order_old")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["version"], 1, "{reply}");
    assert_eq!(server.read_log(key, 100).await.len(), 1);

    // And the next good batch continues right after the stored event.
    let (status, reply) = server
        .append(key, "order_old", &json!({"events": [good(), good()]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(
        (reply["startVersion"].clone(), reply["endVersion"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(positions(&reply), [2, 3]);
}

#[tokio::test]
async fn batch_with_stale_expected_version_stores_nothing() {
    let server = Server::start().await;
    let key = &server.default_key;
    let two = |expected: u64| json!({"expectedVersion": expected, "events": [{"eventType": "A", "data": {}}, {"eventType": "B", "data": {}}]});

    let (status, reply) = server.append(key, "order_1", &two(0)).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let reply = server.append(key, "order_1", &two(1)).await;
    assert_error(&reply, 409, "concurrency");
    assert_eq!(
        (reply.1["expectedVersion"].clone(), reply.1["actualVersion"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(server.read_stream(key, "order_1", 100).await.len(), 2);
    assert_eq!(server.read_log(key, 100).await.len(), 2);
}
