//! Restarting the server keeps reducers: uploads, bindings and states are still there, appends still return the
//! state, and an upload accepted just before the stop still ends ready.

use crate::support::*;

#[tokio::test]
async fn after_a_restart_state_is_served_and_reducers_stay_bound() {
    let mut server = start().await;
    let key = server.default_key.clone();
    let upload = accepted(
        &upload_json(
            &server,
            &key,
            &json!({"files": {"OrderReducer.cs": order_reducer()}, "aggregateType": "order"}),
        )
        .await,
    );
    let reducer_id = str_of(&wait_ready(&server, &key, &upload).await["reducerId"]).to_string();
    append_ok(&server, &key, "order_1", &order_placed("c1")).await;
    append_ok(&server, &key, "order_1", &item_added("Widget", 10.0)).await;
    let (_, binding_before) = get_binding(&server, &key, "order").await;

    // An upload the server may still be compiling when it is told to stop.
    let late = accepted(
        &upload_json(
            &server,
            &key,
            &json!({"files": {"OrderReducer.cs": code("order_doubled.cs")}}),
        )
        .await,
    );

    let status = server.stop_sigterm().await;
    assert!(
        status.success(),
        "hapnd exits 0 on SIGTERM: {status}; stderr:\n{}",
        server.stderr()
    );
    server.restart().await;

    let state = state_at(&server, &key, "order_1", 2, &reducer_id).await;
    assert_order(&state, Some("c1"), 10.0);
    let (status, binding_after) = get_binding(&server, &key, "order").await;
    assert_eq!(status, StatusCode::OK, "{binding_after}");
    assert_eq!(binding_after, binding_before, "the binding survives as it was");
    let ready = wait_ready(&server, &key, &upload).await;
    assert_eq!(ready["reducerId"], reducer_id.as_str(), "{ready}");
    assert_eq!(ready["aggregateType"], "order", "{ready}");

    let added = append_ok(&server, &key, "order_1", &item_added("Gadget", 2.5)).await;
    assert_eq!(added["version"], 3, "{added}");
    assert_order(&added["state"], Some("c1"), 12.5);
    let fresh = append_ok(&server, &key, "order_2", &order_placed("c2")).await;
    assert_order(&fresh["state"], Some("c2"), 0.0);

    // The late upload was compiled, before or after the restart, and can be bound.
    let late = wait_ready(&server, &key, &late).await;
    let doubled = str_of(&late["reducerId"]);
    assert_ne!(doubled, reducer_id, "{late}");
    bind(&server, &key, "order", doubled).await;
    let state = state_at(&server, &key, "order_1", 3, doubled).await;
    assert_order(&state, Some("c1"), 25.0);
}

#[tokio::test]
async fn a_killed_server_serves_the_state_it_acknowledged() {
    let mut server = start().await;
    let key = server.default_key.clone();
    let reducer_id = upload_order_reducer(&server, &key).await;
    append_ok(&server, &key, "order_1", &order_placed("c1")).await;
    let mut total = 0.0;
    for price in [1.0, 2.0, 4.0] {
        total += price;
        let added = append_ok(&server, &key, "order_1", &item_added("Widget", price)).await;
        assert_order(&added["state"], Some("c1"), total);
    }

    server.kill9();
    server.restart().await;

    let state = state_at(&server, &key, "order_1", 4, &reducer_id).await;
    assert_order(&state, Some("c1"), 7.0);
    let added = append_ok(&server, &key, "order_1", &item_added("Widget", 8.0)).await;
    assert_order(&added["state"], Some("c1"), 15.0);
}
