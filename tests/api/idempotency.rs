//! Retries: an event id already stored with the same content is answered with the original result (200,
//! `duplicate: true`) and stored once; other content under that id, or a partly repeated batch, is a conflict.

use crate::harness::*;

/// `reply` without its `duplicate` field, which must be `true`.
#[track_caller]
fn strip_duplicate(reply: &Value) -> Value {
    assert_eq!(reply["duplicate"], true, "{reply}");
    let mut original = reply.clone();
    original
        .as_object_mut()
        .expect("reply is an object")
        .remove("duplicate");
    original
}

#[tokio::test]
async fn retried_single_append_is_a_duplicate_with_the_original_result() {
    let server = Server::start().await;
    let key = &server.default_key;
    let body = json!({"eventType": "OrderPlaced", "data": {"customerId": "c1"}, "metadata": {"m": 1}, "eventId": new_event_id()});
    let (status, first) = server.append(key, "order_1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(
        first.get("duplicate").is_none_or(|d| d == false),
        "a first append is no duplicate: {first}"
    );

    for _ in 0..2 {
        let (status, retry) = server.append(key, "order_1", &body).await;
        assert_eq!(status, StatusCode::OK, "{retry}");
        assert_eq!(
            strip_duplicate(&retry),
            first,
            "a retry answers with the original result"
        );
    }

    // Stored once: the stream has one event and the next append gets the next position.
    assert_eq!(server.read_stream(key, "order_1", 100).await.len(), 1);
    let (status, next) = server
        .append(key, "order_1", &json!({"eventType": "Paid", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{next}");
    assert_eq!(
        (next["version"].clone(), next["globalPosition"].clone()),
        (json!(2), json!(2))
    );
    assert_log_consistent(&server.read_log(key, 100).await);
}

#[tokio::test]
async fn retried_conditional_append_succeeds() {
    let server = Server::start().await;
    let key = &server.default_key;
    let body = json!({"eventType": "OrderPlaced", "data": {}, "eventId": new_event_id(), "expectedVersion": 0});
    let (status, first) = server.append(key, "order_1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // expectedVersion 0 no longer holds, but idempotency is checked first.
    let (status, retry) = server.append(key, "order_1", &body).await;
    assert_eq!(status, StatusCode::OK, "{retry}");
    assert_eq!(strip_duplicate(&retry), first);

    // The same through the header form.
    let path = events_path("order_1");
    let body = json!({"eventType": "Paid", "data": {}, "eventId": new_event_id()});
    let (status, first) = server
        .post_json_with(key, &path, &body, &[("Expected-Version", "1")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, retry) = server
        .post_json_with(key, &path, &body, &[("Expected-Version", "1")])
        .await;
    assert_eq!(status, StatusCode::OK, "{retry}");
    assert_eq!(strip_duplicate(&retry), first);
    assert_eq!(server.read_log(key, 100).await.len(), 2);
}

#[tokio::test]
async fn same_id_with_other_content_is_an_event_id_conflict() {
    let server = Server::start().await;
    let key = &server.default_key;
    let id = new_event_id();
    let original =
        json!({"eventType": "OrderPlaced", "data": {"customerId": "c1"}, "metadata": {"source": "web"}, "eventId": id});
    let (status, reply) = server.append(key, "order_1", &original).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    let others = [
        json!({"eventType": "OrderPlaced", "data": {"customerId": "c2"}, "metadata": {"source": "web"}, "eventId": id}),
        json!({"eventType": "OrderCancelled", "data": {"customerId": "c1"}, "metadata": {"source": "web"}, "eventId": id}),
        json!({"eventType": "OrderPlaced", "data": {"customerId": "c1"}, "metadata": {"source": "app"}, "eventId": id}),
        json!({"eventType": "OrderPlaced", "data": {"customerId": "c1"}, "eventId": id}),
    ];
    for other in &others {
        let reply = server.append(key, "order_1", other).await;
        assert_error(&reply, 409, "event_id_conflict");
        assert_keys(&reply.1, &["error", "message", "eventId"]);
        assert_eq!(reply.1["eventId"], id);
    }
    let stored = server.read_stream(key, "order_1", 100).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["data"], json!({"customerId": "c1"}));
    assert_eq!(stored[0]["eventType"], "OrderPlaced");
    assert_eq!(server.read_log(key, 100).await.len(), 1);
}

#[tokio::test]
async fn retried_batch_is_a_duplicate() {
    let server = Server::start().await;
    let key = &server.default_key;
    let body = json!({"expectedVersion": 0, "events": [
        {"eventType": "OrderPlaced", "data": {}, "eventId": new_event_id()},
        {"eventType": "ItemAdded", "data": {"price": 5}, "eventId": new_event_id()},
    ]});
    let (status, first) = server.append(key, "order_1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, retry) = server.append(key, "order_1", &body).await;
    assert_eq!(status, StatusCode::OK, "{retry}");
    assert_eq!(strip_duplicate(&retry), first);
    assert_eq!(server.read_stream(key, "order_1", 100).await.len(), 2);
    assert_eq!(server.read_log(key, 100).await.len(), 2);
}

#[tokio::test]
async fn partially_repeated_batch_is_refused_and_stores_nothing() {
    let server = Server::start().await;
    let key = &server.default_key;
    let (a, b, c) = (new_event_id(), new_event_id(), new_event_id());
    let event = |id: &str| json!({"eventType": "ItemAdded", "data": {}, "eventId": id});
    let (status, reply) = server
        .append(key, "order_1", &json!({"events": [event(&a), event(&b)]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    let reply = server
        .append(key, "order_1", &json!({"events": [event(&b), event(&c)]}))
        .await;
    assert_error(&reply, 409, "event_id_conflict");
    assert_eq!(
        reply.1["eventId"],
        b.as_str(),
        "the conflict names the repeated id: {}",
        reply.1
    );

    let stored = server.read_stream(key, "order_1", 100).await;
    let ids: Vec<&str> = stored.iter().map(|e| str_of(&e["eventId"])).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()], "nothing of the refused batch is stored");
    assert_eq!(server.read_log(key, 100).await.len(), 2);

    // The new id alone is still free.
    let (status, reply) = server.append(key, "order_1", &event(&c)).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["version"], 3);
}
