//! Tenants stay apart: two tenants upload reducers with the same class and state names and different logic, bind
//! them to the same type, write the same aggregate ids, and each sees only its own reducer, uploads and states.

use crate::support::*;

#[tokio::test]
async fn tenants_with_same_named_reducers_each_see_their_own() {
    let server = start().await;
    let alpha = &server.default_key;
    let beta = &server.create_tenant("beta").await;

    let alpha_upload = accepted(
        &upload_json(
            &server,
            alpha,
            &json!({"files": {"OrderReducer.cs": order_reducer()}, "aggregateType": "order"}),
        )
        .await,
    );
    let alpha_reducer = str_of(&wait_ready(&server, alpha, &alpha_upload).await["reducerId"]).to_string();
    let beta_ready = upload_ready(
        &server,
        beta,
        "OrderReducer.cs",
        &code("order_doubled.cs"),
        Some("order"),
    )
    .await;
    let beta_reducer = str_of(&beta_ready["reducerId"]).to_string();
    assert_eq!(beta_ready["className"], "OrderReducer", "{beta_ready}");
    assert_ne!(alpha_reducer, beta_reducer, "{beta_ready}");

    // The same events on the same ids: each tenant's own code runs.
    for key in [alpha, beta] {
        append_ok(&server, key, "order_1", &order_placed("c1")).await;
    }
    let a = append_ok(&server, alpha, "order_1", &item_added("Widget", 10.0)).await;
    let b = append_ok(&server, beta, "order_1", &item_added("Widget", 10.0)).await;
    assert_order(&a["state"], Some("c1"), 10.0);
    assert_order(&b["state"], Some("c1"), 20.0);
    assert_order(
        &state_at(&server, alpha, "order_1", 2, &alpha_reducer).await,
        Some("c1"),
        10.0,
    );
    assert_order(
        &state_at(&server, beta, "order_1", 2, &beta_reducer).await,
        Some("c1"),
        20.0,
    );

    // Each tenant's bindings, reducers and uploads are its own.
    let (_, shown) = get_binding(&server, beta, "order").await;
    assert_binding(&shown, "order", &beta_reducer);
    let (_, listed) = server.get(beta, "/reducers").await;
    let ids: Vec<&str> = listed["reducers"]
        .as_array()
        .unwrap_or_else(|| panic!("no reducers list: {listed}"))
        .iter()
        .map(|r| str_of(&r["reducerId"]))
        .collect();
    assert_eq!(ids, [beta_reducer.as_str()], "{listed}");
    assert_error(
        &put_binding(&server, beta, "order", &alpha_reducer).await,
        404,
        "reducer_not_found",
    );
    assert_error(
        &server.get(beta, &format!("/reducers/{alpha_upload}/status")).await,
        404,
        "not_found",
    );

    // A tenant without uploads has no reducers and no bindings.
    let gamma = &server.create_tenant("gamma").await;
    assert_error(
        &put_binding(&server, gamma, "order", &alpha_reducer).await,
        404,
        "reducer_not_found",
    );
    assert_error(&get_binding(&server, gamma, "order").await, 404, "not_bound");
    let plain = append_ok(&server, gamma, "order_1", &order_placed("c1")).await;
    assert!(plain.get("state").is_none(), "{plain}");

    // Alpha is untouched by all of it.
    let a = append_ok(&server, alpha, "order_1", &item_added("Gadget", 1.0)).await;
    assert_order(&a["state"], Some("c1"), 11.0);
}

#[tokio::test]
async fn the_same_code_in_two_tenants_is_two_reducers_each_bound_alone() {
    let server = start().await;
    let alpha = &server.default_key;
    let beta = &server.create_tenant("beta").await;
    let alpha_reducer = upload_order_reducer(&server, alpha).await;
    let beta_ready = upload_ready(&server, beta, "OrderReducer.cs", &order_reducer(), None).await;
    let beta_reducer = str_of(&beta_ready["reducerId"]);

    // Beta uploaded without a type: alpha's binding does not leak into beta.
    assert_error(&get_binding(&server, beta, "order").await, 404, "not_bound");
    let plain = append_ok(&server, beta, "order_1", &order_placed("b")).await;
    assert!(plain.get("state").is_none(), "{plain}");
    // Beta binds its own, and unbinding it leaves alpha's binding alone.
    bind(&server, beta, "order", beta_reducer).await;
    let b = append_ok(&server, beta, "order_1", &item_added("Widget", 1.0)).await;
    assert_order(&b["state"], Some("b"), 1.0);
    let (status, _) = server
        .send(server.request(Method::DELETE, &binding_path("order")).bearer_auth(beta))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, shown) = get_binding(&server, alpha, "order").await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_binding(&shown, "order", &alpha_reducer);
    let a = append_ok(&server, alpha, "order_1", &order_placed("a")).await;
    assert_order(&a["state"], Some("a"), 0.0);
}
