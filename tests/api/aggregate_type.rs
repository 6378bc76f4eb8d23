//! Aggregate types: inferred from the id before the first `_` or `-`, or given explicitly; fixed by the first event.

use crate::harness::*;

#[tokio::test]
async fn type_is_inferred_from_the_id() {
    let server = Server::start().await;
    let key = &server.default_key;
    let examples = [
        ("order_123", "order"),
        ("cart-abc", "cart"),
        ("user_profile_456", "user"),
        ("inventory-item-789", "inventory"),
    ];
    for (id, expected) in examples {
        let (status, reply) = server
            .append(key, id, &json!({"eventType": "Created", "data": {}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{id}: {reply}");
        assert_eq!(reply["aggregateType"], expected, "{id}: {reply}");

        let (status, read) = server.get(key, &events_path(id)).await;
        assert_eq!(status, StatusCode::OK, "{id}: {read}");
        assert_eq!(read["aggregateId"], id);
        assert_eq!(read["aggregateType"], expected, "{id}: {read}");
        assert_eq!(read["events"][0]["aggregateType"], expected, "{id}: {read}");
    }
}

#[tokio::test]
async fn explicit_type_is_used_for_an_id_without_separator() {
    let server = Server::start().await;
    let key = &server.default_key;
    let (status, reply) = server
        .append(
            key,
            "nosep123",
            &json!({"eventType": "Created", "data": {}, "aggregateType": "widget"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["aggregateType"], "widget");
    let events = server.read_stream(key, "nosep123", 100).await;
    assert_eq!(events[0]["aggregateType"], "widget");

    // A batch can carry it too.
    let body = json!({"aggregateType": "gadget", "events": [{"eventType": "Created", "data": {}}]});
    let (status, reply) = server.append(key, "gizmo", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["aggregateType"], "gadget");
}

#[tokio::test]
async fn id_without_separator_or_type_is_refused() {
    let server = Server::start().await;
    let key = &server.default_key;
    for body in [
        json!({"eventType": "Created", "data": {}}),
        json!({"events": [{"eventType": "Created", "data": {}}]}),
    ] {
        assert_error(
            &server.append(key, "nosep", &body).await,
            400,
            "aggregate_type_required",
        );
    }
    assert_error(
        &server.get(key, &events_path("nosep")).await,
        404,
        "aggregate_not_found",
    );
    assert!(server.read_log(key, 100).await.is_empty());
}

#[tokio::test]
async fn first_event_fixes_the_type() {
    let server = Server::start().await;
    let key = &server.default_key;
    // An explicit type beats the inferred one on the first event...
    let (status, reply) = server
        .append(
            key,
            "order_9",
            &json!({"eventType": "Created", "data": {}, "aggregateType": "purchase"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["aggregateType"], "purchase");

    // ...and later events without a type keep it.
    let (status, reply) = server
        .append(key, "order_9", &json!({"eventType": "Paid", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["aggregateType"], "purchase", "{reply}");

    // The same explicit type is fine, another one is refused and stores nothing.
    let (status, reply) = server
        .append(
            key,
            "order_9",
            &json!({"eventType": "Shipped", "data": {}, "aggregateType": "purchase"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    for other in ["order", "invoice"] {
        let body = json!({"eventType": "Shipped", "data": {}, "aggregateType": other});
        assert_error(
            &server.append(key, "order_9", &body).await,
            409,
            "aggregate_type_mismatch",
        );
        let batch = json!({"aggregateType": other, "events": [{"eventType": "Shipped", "data": {}}]});
        assert_error(
            &server.append(key, "order_9", &batch).await,
            409,
            "aggregate_type_mismatch",
        );
    }
    let events = server.read_stream(key, "order_9", 100).await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["aggregateType"] == "purchase"), "{events:?}");

    // An inferred aggregate refuses a different explicit type too.
    let (status, reply) = server
        .append(key, "cart-1", &json!({"eventType": "Opened", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let body = json!({"eventType": "Closed", "data": {}, "aggregateType": "basket"});
    assert_error(
        &server.append(key, "cart-1", &body).await,
        409,
        "aggregate_type_mismatch",
    );
    assert_eq!(server.read_log(key, 100).await.len(), 4);
}
