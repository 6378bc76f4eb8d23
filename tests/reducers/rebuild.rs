//! State rebuilt from the events: after rebinding a type to another version of its reducer (the next append or state
//! read replays the aggregate through the new code, and back again), and after binding a type whose aggregates
//! already have events, or gained events while it was unbound.

use crate::support::*;

#[tokio::test]
async fn rebinding_to_a_new_version_rebuilds_state_from_all_events() {
    let server = start().await;
    let key = &server.default_key;
    let v1 = upload_order_reducer(&server, key).await;
    for aggregate in ["order_read", "order_write"] {
        append_ok(&server, key, aggregate, &order_placed("c1")).await;
        append_ok(&server, key, aggregate, &item_added("Widget", 10.0)).await;
        let added = append_ok(&server, key, aggregate, &item_added("Gadget", 2.5)).await;
        assert_order(&added["state"], Some("c1"), 12.5);
    }

    // Version 2 counts every item twice; a different program, so a different reducer.
    let ready = upload_ready(&server, key, "OrderReducer.cs", &code("order_doubled.cs"), None).await;
    let v2 = str_of(&ready["reducerId"]).to_string();
    assert_ne!(v2, v1, "other code, other reducer");
    assert_eq!(ready["className"], "OrderReducer", "{ready}");
    // Uploaded, not yet bound: version 1 still answers.
    let state = state_at(&server, key, "order_read", 3, &v1).await;
    assert_order(&state, Some("c1"), 12.5);

    bind(&server, key, "order", &v2).await;
    // A state read replays the whole aggregate through version 2 ...
    let state = state_at(&server, key, "order_read", 3, &v2).await;
    assert_order(&state, Some("c1"), 25.0);
    // ... and so does an append, before applying its own event.
    let added = append_ok(&server, key, "order_write", &item_added("Gizmo", 1.0)).await;
    assert_order(&added["state"], Some("c1"), 27.0);
    let added = append_ok(&server, key, "order_read", &item_added("Gizmo", 1.0)).await;
    assert_order(&added["state"], Some("c1"), 27.0);

    // Back to version 1: rebuilt again, every event counted once.
    bind(&server, key, "order", &v1).await;
    let added = append_ok(&server, key, "order_write", &item_added("Bolt", 0.5)).await;
    assert_order(&added["state"], Some("c1"), 14.0);
    let state = state_at(&server, key, "order_read", 4, &v1).await;
    assert_order(&state, Some("c1"), 13.5);
}

#[tokio::test]
async fn binding_after_events_exist_rebuilds_state_from_them() {
    let server = start().await;
    let key = &server.default_key;
    // Events first, with no reducer anywhere.
    append_ok(&server, key, "order_old", &order_placed("early")).await;
    let batch = json!({"events": [item_added("Widget", 3.0), event("OrderNoted"), item_added("Gadget", 4.5)]});
    let stored = append_ok(&server, key, "order_old", &batch).await;
    assert!(stored.get("state").is_none(), "no reducer, no state: {stored}");
    assert_error(&get_state(&server, key, "order_old").await, 404, "no_reducer");

    // The upload binds `order` once it is ready; the existing events are folded on first touch.
    let reducer_id = upload_order_reducer(&server, key).await;
    let state = state_at(&server, key, "order_old", 4, &reducer_id).await;
    assert_order(&state, Some("early"), 7.5);
    let added = append_ok(&server, key, "order_old", &item_added("Gizmo", 0.5)).await;
    assert_eq!(added["version"], 5, "{added}");
    assert_order(&added["state"], Some("early"), 8.0);

    // Unbound for a while: an aggregate gets all its events, another one events beyond its snapshot. Bound again,
    // both are folded from every event, the ones appended meanwhile included.
    let request = server.request(Method::DELETE, &binding_path("order")).bearer_auth(key);
    let (status, _) = server.send(request).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stored = append_ok(
        &server,
        key,
        "order_new",
        &json!({"events": [order_placed("e2"), item_added("Nut", 1.0)]}),
    )
    .await;
    assert!(stored.get("state").is_none(), "no reducer, no state: {stored}");
    append_ok(&server, key, "order_old", &item_added("Washer", 10.0)).await;
    bind(&server, key, "order", &reducer_id).await;
    let added = append_ok(&server, key, "order_new", &item_added("Bolt", 2.0)).await;
    assert_order(&added["state"], Some("e2"), 3.0);
    let state = state_at(&server, key, "order_old", 6, &reducer_id).await;
    assert_order(&state, Some("early"), 18.0);
}
