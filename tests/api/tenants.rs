//! Tenants: each tenant sees only its own aggregates and log (own positions from 1), and the command-line tool
//! creates and lists tenants, refusing bad and existing names.

use crate::harness::*;

#[tokio::test]
async fn tenants_do_not_see_each_other() {
    let server = Server::start().await;
    let a = &server.default_key;
    let shared_id = new_event_id();
    for body in [
        json!({"eventType": "OrderPlaced", "data": {"tenant": "a"}, "eventId": shared_id}),
        json!({"eventType": "Paid", "data": {}}),
    ] {
        let (status, reply) = server.append(a, "order_1", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
    }
    let (status, reply) = server
        .append(a, "cart-1", &json!({"eventType": "Opened", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    // Created while the server runs.
    let b = &server.create_tenant("beta").await;

    // A's aggregates do not exist for B, and B's log is empty.
    assert_error(
        &server.get(b, "/aggregates/order_1/events").await,
        404,
        "aggregate_not_found",
    );
    assert_error(
        &server.get(b, "/aggregates/cart-1/events").await,
        404,
        "aggregate_not_found",
    );
    let (status, reply) = server.get(b, "/events").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({"events": [], "headPosition": 0, "nextAfter": 0}));

    // B's own order_1 starts at version 1 and position 1; A's event id means nothing in B.
    let body = json!({"eventType": "OrderPlaced", "data": {"tenant": "b"}, "eventId": shared_id});
    let (status, reply) = server.append(b, "order_1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(
        (reply["version"].clone(), reply["globalPosition"].clone()),
        (json!(1), json!(1)),
        "{reply}"
    );
    let (status, reply) = server
        .append(b, "order_2", &json!({"eventType": "OrderPlaced", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["globalPosition"], 2, "{reply}");

    let b_log = server.read_log(b, 100).await;
    assert_log_consistent(&b_log);
    let b_aggregates: Vec<&str> = b_log.iter().map(|e| str_of(&e["aggregateId"])).collect();
    assert_eq!(b_aggregates, ["order_1", "order_2"]);
    assert_eq!(b_log[0]["data"], json!({"tenant": "b"}));

    // A is untouched and continues its own positions.
    let a_stream = server.read_stream(a, "order_1", 100).await;
    assert_eq!(a_stream.len(), 2);
    assert_eq!(a_stream[0]["data"], json!({"tenant": "a"}));
    assert_error(
        &server.get(a, "/aggregates/order_2/events").await,
        404,
        "aggregate_not_found",
    );
    let (status, reply) = server
        .append(a, "order_1", &json!({"eventType": "Shipped", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(
        (reply["version"].clone(), reply["globalPosition"].clone()),
        (json!(3), json!(4)),
        "{reply}"
    );
    let a_log = server.read_log(a, 100).await;
    assert_log_consistent(&a_log);
    assert_eq!(a_log.len(), 4);
    assert!(
        a_log.iter().all(|e| e["data"] != json!({"tenant": "b"})),
        "B's event leaked into A's log"
    );
}

#[tokio::test]
async fn tenant_names_are_checked_and_unique() {
    let server = Server::start().await;
    let long_ok = format!("a{}", "b".repeat(62));
    for name in ["acme", "0-x_y", "z", long_ok.as_str()] {
        server.create_tenant(name).await;
    }

    let too_long = format!("a{}", "b".repeat(63));
    for name in [
        "acme",
        "Acme",
        "-acme",
        "_acme",
        "ac me",
        "acme!",
        "",
        too_long.as_str(),
    ] {
        let out = server.cli(&["tenant", "create", name, "--json"]).await;
        assert!(
            !out.status.success(),
            "tenant create {name:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    let list = server.cli_json(&["tenant", "list", "--json"]).await;
    let tenants = list
        .as_array()
        .unwrap_or_else(|| panic!("tenant list is not an array: {list}"));
    for tenant in tenants {
        assert_keys(tenant, &["tenantId", "createdAt"]);
        assert!(tenant["createdAt"].as_str().is_some_and(|t| !t.is_empty()), "{tenant}");
    }
    let mut names: Vec<&str> = tenants.iter().map(|t| str_of(&t["tenantId"])).collect();
    names.sort_unstable();
    // The default tenant plus the four created ones, and none of the refused names.
    assert_eq!(names.len(), 5, "{list}");
    for name in ["acme", "0-x_y", "z", long_ok.as_str()] {
        assert!(names.contains(&name), "{name} missing from {list}");
    }
    assert!(
        !names.contains(&too_long.as_str()) && !names.contains(&"Acme"),
        "{list}"
    );
}
