//! Appending with a bound reducer: each append answers with the new state, a batch with the state after its last
//! event, a duplicate retry with the state, and `GET /aggregates/{id}/state` agrees, with the version.

use crate::support::*;

#[tokio::test]
async fn every_append_returns_the_state_of_the_issues_order_reducer() {
    let server = start().await;
    let key = &server.default_key;
    let reducer_id = upload_order_reducer(&server, key).await;

    let placed = append_ok(&server, key, "order_1", &order_placed("cust_42")).await;
    assert_keys(
        &placed,
        &["eventId", "version", "globalPosition", "aggregateType", "state"],
    );
    assert_eq!(placed["version"], 1, "{placed}");
    assert_eq!(placed["aggregateType"], "order", "{placed}");
    assert_order(&placed["state"], Some("cust_42"), 0.0);

    let added = append_ok(&server, key, "order_1", &item_added("Widget", 10.0)).await;
    assert_eq!(added["version"], 2, "{added}");
    assert_order(&added["state"], Some("cust_42"), 10.0);

    let added = append_ok(&server, key, "order_1", &item_added("Gadget", 2.5)).await;
    assert_eq!(added["version"], 3, "{added}");
    assert_order(&added["state"], Some("cust_42"), 12.5);

    // A batch: one state, after its last event (an event type the reducer ignores included).
    let batch = json!({"events": [event("OrderNoted"), item_added("Gizmo", 7.25), item_added("Bolt", 0.25)]});
    let stored = append_ok(&server, key, "order_1", &batch).await;
    assert_keys(
        &stored,
        &["startVersion", "endVersion", "aggregateType", "events", "state"],
    );
    assert_eq!(
        (stored["startVersion"].clone(), stored["endVersion"].clone()),
        (json!(4), json!(6))
    );
    assert_order(&stored["state"], Some("cust_42"), 20.0);

    // The state read agrees, at the last version.
    let state = state_at(&server, key, "order_1", 6, &reducer_id).await;
    assert_order(&state, Some("cust_42"), 20.0);
    let (_, read) = get_state(&server, key, "order_1").await;
    assert_eq!(read["aggregateType"], "order", "{read}");

    // A retry of the last append is a duplicate, and carries the state.
    let retried = json!({"eventType": "ItemAdded", "data": {"item": "Nut", "price": 1}, "eventId": new_event_id()});
    let first = append_ok(&server, key, "order_1", &retried).await;
    assert_order(&first["state"], Some("cust_42"), 21.0);
    let (status, again) = server.append(key, "order_1", &retried).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["version"], 7, "{again}");
    assert_order(&again["state"], Some("cust_42"), 21.0);

    // Another aggregate of the type starts from no state; the first one is untouched.
    let other = append_ok(&server, key, "order_2", &item_added("Widget", 3.0)).await;
    assert_order(&other["state"], None, 3.0);
    let state = state_at(&server, key, "order_1", 7, &reducer_id).await;
    assert_order(&state, Some("cust_42"), 21.0);

    // The events are stored as sent, whatever the reducer did with them.
    let events = server.read_stream(key, "order_1", 100).await;
    let types: Vec<&str> = events.iter().map(|e| str_of(&e["eventType"])).collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "ItemAdded",
            "ItemAdded",
            "OrderNoted",
            "ItemAdded",
            "ItemAdded",
            "ItemAdded"
        ]
    );

    // Types without a reducer answer as before, with no state.
    let plain = append_ok(&server, key, "cart-1", &event("Opened")).await;
    assert_keys(&plain, &["eventId", "version", "globalPosition", "aggregateType"]);
    assert_error(&get_state(&server, key, "cart-1").await, 404, "no_reducer");
    assert_error(&get_state(&server, key, "order_404").await, 404, "aggregate_not_found");
}

#[tokio::test]
async fn the_issues_example_events_fold_to_the_issues_expected_state() {
    let server = start().await;
    let key = &server.default_key;
    let reducer_id = upload_order_reducer(&server, key).await;
    let events: Vec<Value> =
        serde_json::from_str(&fixture("legit/order_reducer.events.json")).expect("the events file is JSON");
    let expected: Value =
        serde_json::from_str(&fixture("legit/order_reducer.expected.json")).expect("the expected file is JSON");
    let mut last = Value::Null;
    for event in &events {
        let aggregate = str_of(&event["aggregateId"]);
        let body = json!({"eventType": event["eventType"], "data": event["data"]});
        last = append_ok(&server, key, aggregate, &body).await;
    }
    let aggregate = str_of(&events[0]["aggregateId"]);
    let total = expected["total"].as_f64().expect("a numeric total");
    let customer = expected["customerId"].as_str();
    assert_order(&last["state"], customer, total);
    let state = state_at(&server, key, aggregate, events.len() as u64, &reducer_id).await;
    assert_order(&state, customer, total);
}
