//! The binding API: `PUT`, `GET` and `DELETE /aggregate-types/{type}/reducer`, its errors, and what appends and
//! state reads do with and without a binding.

use crate::support::*;

#[tokio::test]
async fn binding_and_unbinding_a_reducer() {
    let server = start().await;
    let key = &server.default_key;
    let ready = upload_ready(&server, key, "OrderReducer.cs", &order_reducer(), None).await;
    let reducer_id = str_of(&ready["reducerId"]);

    // Uploaded without a type: nothing is bound, and appends carry no state.
    assert_error(&get_binding(&server, key, "order").await, 404, "not_bound");
    assert_error(&delete_binding(&server, key, "order").await, 404, "not_bound");
    let plain = append_ok(&server, key, "order_1", &order_placed("c1")).await;
    assert_keys(&plain, &["eventId", "version", "globalPosition", "aggregateType"]);
    assert_error(&get_state(&server, key, "order_1").await, 404, "no_reducer");

    // Unknown reducers cannot be bound.
    assert_error(
        &put_binding(&server, key, "order", "red_doesnotexist").await,
        404,
        "reducer_not_found",
    );
    assert_error(&get_binding(&server, key, "order").await, 404, "not_bound");

    // Bound: GET shows it, the state is served, and appends carry it.
    let bound = bind(&server, key, "order", reducer_id).await;
    let (status, shown) = get_binding(&server, key, "order").await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown, bound, "GET shows what PUT bound");
    let state = state_at(&server, key, "order_1", 1, reducer_id).await;
    assert_order(&state, Some("c1"), 0.0);
    let added = append_ok(&server, key, "order_1", &item_added("Widget", 4.0)).await;
    assert_order(&added["state"], Some("c1"), 4.0);
    // The binding is per type.
    assert_error(&get_binding(&server, key, "cart").await, 404, "not_bound");
    let cart = append_ok(&server, key, "cart-1", &event("Opened")).await;
    assert_keys(&cart, &["eventId", "version", "globalPosition", "aggregateType"]);

    // Binding the same reducer again is fine and changes nothing.
    bind(&server, key, "order", reducer_id).await;
    let added = append_ok(&server, key, "order_1", &item_added("Gadget", 1.0)).await;
    assert_order(&added["state"], Some("c1"), 5.0);

    // Unbound: 204 with no body, then the type is as if never bound.
    let request = server.request(Method::DELETE, &binding_path("order")).bearer_auth(key);
    let response = request.send().await.expect("the server answers");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.expect("read the body"), "");
    assert_error(&get_binding(&server, key, "order").await, 404, "not_bound");
    assert_error(&delete_binding(&server, key, "order").await, 404, "not_bound");
    let after = append_ok(&server, key, "order_1", &item_added("Gizmo", 2.0)).await;
    assert_keys(&after, &["eventId", "version", "globalPosition", "aggregateType"]);
    assert_eq!(after["version"], 4, "{after}");
    assert_error(&get_state(&server, key, "order_1").await, 404, "no_reducer");
    let batch = append_ok(&server, key, "order_1", &json!({"events": [event("OrderNoted")]})).await;
    assert_keys(&batch, &["startVersion", "endVersion", "aggregateType", "events"]);

    // The reducer itself is still the tenant's, and binds again.
    bind(&server, key, "order", reducer_id).await;
    let state = state_at(&server, key, "order_1", 5, reducer_id).await;
    assert_order(&state, Some("c1"), 7.0);
}

#[tokio::test]
async fn binding_requests_are_validated() {
    let server = start().await;
    let key = &server.default_key;
    let reducer_id = upload_order_reducer(&server, key).await;
    let put = |body: Value| {
        let request = server
            .request(Method::PUT, &binding_path("order"))
            .bearer_auth(key)
            .json(&body);
        server.send(request)
    };
    assert_error(&put(json!({})).await, 400, "invalid_json");
    assert_error(&put(json!({"reducerId": 5})).await, 400, "invalid_json");
    assert_error(
        &put(json!({"reducerId": reducer_id, "extra": 1})).await,
        400,
        "invalid_json",
    );
    assert_error(
        &put_binding(&server, key, "bad type!", &reducer_id).await,
        400,
        "invalid_aggregate_type",
    );
    let anonymous = server.send(server.request(Method::GET, &binding_path("order"))).await;
    assert_error(&anonymous, 401, "unauthorized");
    // Still bound as the upload asked.
    let (status, shown) = get_binding(&server, key, "order").await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_binding(&shown, "order", &reducer_id);
}
