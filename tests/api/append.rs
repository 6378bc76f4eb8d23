//! Appending one event: the response, what is stored, `expectedVersion` and the request-level header forms.

use crate::harness::*;

const SINGLE_KEYS: &[&str] = &["eventId", "version", "globalPosition", "aggregateType"];
const EVENT_KEYS: &[&str] = &[
    "eventId",
    "aggregateId",
    "aggregateType",
    "eventType",
    "version",
    "globalPosition",
    "data",
    "metadata",
    "correlationId",
    "causationId",
    "timestamp",
];
const CONCURRENCY_KEYS: &[&str] = &["error", "message", "expectedVersion", "actualVersion"];

#[tokio::test]
async fn single_append_returns_version_position_and_type() {
    let server = Server::start().await;
    let key = &server.default_key;

    let id = new_event_id();
    let (status, body) = server
        .append(
            key,
            "order_1",
            &json!({"eventType": "OrderPlaced", "data": {"customerId": "c1"}, "eventId": id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_keys(&body, SINGLE_KEYS);
    assert_eq!(
        body,
        json!({"eventId": id, "version": 1, "globalPosition": 1, "aggregateType": "order"})
    );

    let (status, body) = server
        .append(key, "order_1", &json!({"eventType": "ItemAdded", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["version"].clone(), body["globalPosition"].clone()),
        (json!(2), json!(2)),
        "{body}"
    );

    // Versions are per aggregate, positions per tenant.
    let (status, body) = server
        .append(key, "cart-1", &json!({"eventType": "CartOpened", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 1, "{body}");
    assert_eq!(body["globalPosition"], 3, "{body}");
    assert_eq!(body["aggregateType"], "cart", "{body}");
}

#[tokio::test]
async fn appended_event_reads_back_with_every_field() {
    let server = Server::start().await;
    let key = &server.default_key;
    let id = new_event_id();
    let data = json!({"customerId": "c1", "lines": [{"sku": "A", "qty": 2}], "total": 12.5, "gift": false});
    let (status, body) = server
        .append(
            key,
            "order_42",
            &json!({"eventType": "OrderPlaced", "data": data, "metadata": {"source": "web"}, "eventId": id,
                    "correlationId": "corr-1", "causationId": "cause-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let events = server.read_stream(key, "order_42", 100).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_keys(event, EVENT_KEYS);
    assert_eq!(event["eventId"], id);
    assert_eq!(event["aggregateId"], "order_42");
    assert_eq!(event["aggregateType"], "order");
    assert_eq!(event["eventType"], "OrderPlaced");
    assert_eq!(event["version"], 1);
    assert_eq!(event["globalPosition"], 1);
    assert_eq!(event["data"], data);
    assert_eq!(event["metadata"], json!({"source": "web"}));
    assert_eq!(event["correlationId"], "corr-1");
    assert_eq!(event["causationId"], "cause-1");
    assert_timestamp(str_of(&event["timestamp"]));

    // The same event through the tenant's log.
    let log = server.read_log(key, 100).await;
    assert_eq!(log, events);
}

#[tokio::test]
async fn event_without_id_gets_a_fresh_uuid_and_null_optionals() {
    let server = Server::start().await;
    let key = &server.default_key;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, body) = server
            .append(key, "user_7", &json!({"eventType": "Seen", "data": {}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_uuid(str_of(&body["eventId"]));
        ids.push(body["eventId"].clone());
    }
    assert_ne!(ids[0], ids[1], "two appends without eventId got the same id");

    let events = server.read_stream(key, "user_7", 100).await;
    let stored: Vec<Value> = events.iter().map(|e| e["eventId"].clone()).collect();
    assert_eq!(stored, ids);
    for event in &events {
        assert_eq!(event["metadata"], Value::Null, "{event}");
        assert_eq!(event["correlationId"], Value::Null, "{event}");
        assert_eq!(event["causationId"], Value::Null, "{event}");
        assert_timestamp(str_of(&event["timestamp"]));
    }
}

#[tokio::test]
async fn expected_version_in_the_body() {
    let server = Server::start().await;
    let key = &server.default_key;
    let placed = |expected: u64| json!({"eventType": "OrderPlaced", "data": {}, "expectedVersion": expected});

    // 5 on an aggregate that does not exist: refused, and it still does not exist.
    let reply = server.append(key, "order_1", &placed(5)).await;
    assert_error(&reply, 409, "concurrency");
    assert_keys(&reply.1, CONCURRENCY_KEYS);
    assert_eq!(
        (reply.1["expectedVersion"].clone(), reply.1["actualVersion"].clone()),
        (json!(5), json!(0))
    );
    assert_error(
        &server.get(key, &events_path("order_1")).await,
        404,
        "aggregate_not_found",
    );

    // 0 = must not exist: accepted on a new aggregate, refused once it exists.
    let (status, body) = server.append(key, "order_1", &placed(0)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 1);
    let reply = server.append(key, "order_1", &placed(0)).await;
    assert_error(&reply, 409, "concurrency");
    assert_keys(&reply.1, CONCURRENCY_KEYS);
    assert_eq!(
        (reply.1["expectedVersion"].clone(), reply.1["actualVersion"].clone()),
        (json!(0), json!(1))
    );

    // The current version is accepted, a stale one is refused.
    let (status, body) = server.append(key, "order_1", &placed(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 2);
    let reply = server.append(key, "order_1", &placed(1)).await;
    assert_error(&reply, 409, "concurrency");
    assert_eq!(
        (reply.1["expectedVersion"].clone(), reply.1["actualVersion"].clone()),
        (json!(1), json!(2))
    );

    assert_eq!(server.read_stream(key, "order_1", 100).await.len(), 2);
    assert_eq!(
        server.read_log(key, 100).await.len(),
        2,
        "refused appends must store nothing"
    );
}

#[tokio::test]
async fn expected_version_header() {
    let server = Server::start().await;
    let key = &server.default_key;
    let path = events_path("order_1");
    let body = json!({"eventType": "OrderPlaced", "data": {}});

    let (status, reply) = server
        .post_json_with(key, &path, &body, &[("Expected-Version", "0")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let reply = server
        .post_json_with(key, &path, &body, &[("Expected-Version", "0")])
        .await;
    assert_error(&reply, 409, "concurrency");
    assert_eq!(
        (reply.1["expectedVersion"].clone(), reply.1["actualVersion"].clone()),
        (json!(0), json!(1))
    );
    let (status, reply) = server
        .post_json_with(key, &path, &body, &[("Expected-Version", "1")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["version"], 2);

    // A header that is not a non-negative integer is a bad request, not a concurrency failure.
    for bad in ["abc", "-1", "1.5", ""] {
        let (status, reply) = server
            .post_json_with(key, &path, &body, &[("Expected-Version", bad)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "Expected-Version: {bad:?} -> {reply}");
        assert!(reply["error"].is_string() && reply["message"].is_string(), "{reply}");
    }
    assert_eq!(server.read_stream(key, "order_1", 100).await.len(), 2);
}

#[tokio::test]
async fn correlation_and_causation_headers_are_stored() {
    let server = Server::start().await;
    let key = &server.default_key;
    let headers = [("Correlation-Id", "corr-h"), ("Causation-Id", "cause-h")];
    let (status, body) = server
        .post_json_with(
            key,
            &events_path("order_1"),
            &json!({"eventType": "OrderPlaced", "data": {}}),
            &headers,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let events = server.read_stream(key, "order_1", 100).await;
    assert_eq!(events[0]["correlationId"], "corr-h");
    assert_eq!(events[0]["causationId"], "cause-h");
}

#[tokio::test]
async fn header_and_body_must_agree() {
    let server = Server::start().await;
    let key = &server.default_key;
    let path = events_path("order_1");

    let disagreeing: [(Value, (&str, &str)); 3] = [
        (
            json!({"eventType": "A", "data": {}, "expectedVersion": 1}),
            ("Expected-Version", "0"),
        ),
        (
            json!({"eventType": "A", "data": {}, "correlationId": "body"}),
            ("Correlation-Id", "header"),
        ),
        (
            json!({"eventType": "A", "data": {}, "causationId": "body"}),
            ("Causation-Id", "header"),
        ),
    ];
    for (body, header) in &disagreeing {
        let (status, reply) = server.post_json_with(key, &path, body, &[*header]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{header:?} with {body} -> {reply}");
        assert!(reply["error"].is_string() && reply["message"].is_string(), "{reply}");
    }
    assert_error(&server.get(key, &path).await, 404, "aggregate_not_found");

    // Agreeing forms are fine.
    let body = json!({"eventType": "A", "data": {}, "expectedVersion": 0, "correlationId": "c", "causationId": "k"});
    let headers = [
        ("Expected-Version", "0"),
        ("Correlation-Id", "c"),
        ("Causation-Id", "k"),
    ];
    let (status, reply) = server.post_json_with(key, &path, &body, &headers).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let events = server.read_stream(key, "order_1", 100).await;
    assert_eq!(
        (events[0]["correlationId"].clone(), events[0]["causationId"].clone()),
        (json!("c"), json!("k"))
    );
}

/// A timestamp whose microseconds end in 0 must still show six digits (`…:58.180360Z`, not `…:58.18036Z`); one
/// event in ten has such a timestamp, so a hundred of them show a formatter that trims zeros.
#[tokio::test]
async fn timestamps_always_have_six_fraction_digits() {
    let server = Server::start().await;
    let key = &server.default_key;
    for n in 0..100 {
        let (status, reply) = server
            .append(key, "clock_1", &json!({"eventType": "Tick", "data": {"n": n}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
    }
    for event in server.read_stream(key, "clock_1", 1000).await {
        assert_timestamp_micros(str_of(&event["timestamp"]));
    }
}
