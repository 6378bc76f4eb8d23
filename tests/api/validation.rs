//! Every row of the doc's "Limits and validation" table, as data: the request, the status and code it gets, and
//! (for wrong types and bad fields) the field its message must name. Refused requests store nothing.

use crate::harness::*;

/// A request that must be refused.
struct Refused {
    /// The path segment after `/aggregates/` (already percent-encoded).
    aggregate: String,
    /// The raw JSON body.
    body: String,
    status: u16,
    code: &'static str,
    /// A field name the message must contain.
    names: Option<&'static str>,
}

fn refused(aggregate: &str, body: Value, status: u16, code: &'static str) -> Refused {
    Refused {
        aggregate: aggregate.to_string(),
        body: body.to_string(),
        status,
        code,
        names: None,
    }
}

fn naming(mut case: Refused, field: &'static str) -> Refused {
    case.names = Some(field);
    case
}

/// A raw body for `order_1`, refused as a whole.
fn raw(body: &str, status: u16, code: &'static str) -> Refused {
    Refused {
        aggregate: "order_1".to_string(),
        body: body.to_string(),
        status,
        code,
        names: None,
    }
}

/// One event of type `E` with `extra` fields merged in.
fn event(extra: Value) -> Value {
    let mut event = json!({"eventType": "E", "data": {}});
    let fields = extra.as_object().expect("extra fields are an object");
    event
        .as_object_mut()
        .expect("event is an object")
        .extend(fields.clone());
    event
}

/// A batch of three good events with `extra` merged into the one at `index`.
fn batch_with(index: usize, extra: Value) -> Value {
    let mut events = vec![event(json!({})), event(json!({})), event(json!({}))];
    events[index] = event(extra);
    json!({"events": events})
}

async fn assert_refused(server: &Server, cases: Vec<Refused>) {
    let key = &server.default_key;
    for case in &cases {
        let path = events_path(&case.aggregate);
        let request = server
            .request(Method::POST, &path)
            .bearer_auth(key)
            .header("Content-Type", "application/json");
        let reply = server.send(request.body(case.body.clone())).await;
        let what = format!("POST {path} {}", truncate(&case.body));
        assert_eq!(
            (reply.0.as_u16(), &reply.1["error"]),
            (case.status, &json!(case.code)),
            "{what} -> {}",
            reply.1
        );
        assert_error(&reply, case.status, case.code);
        if let Some(field) = case.names {
            let message = str_of(&reply.1["message"]);
            assert!(
                message.contains(field),
                "{what}: message {message:?} does not name {field}"
            );
        }
    }
}

fn truncate(s: &str) -> &str {
    &s[..s.len().min(160)]
}

#[tokio::test]
async fn ids_and_types_are_checked() {
    let server = Server::start().await;
    let key = &server.default_key;
    let too_long_id = format!("o_{}", "a".repeat(199));
    let too_long_type = "t".repeat(101);
    let too_long_event_type = "E".repeat(201);
    let cases = vec![
        // Aggregate ids.
        refused("order_1%20x", event(json!({})), 400, "invalid_aggregate_id"),
        refused("order_1%21", event(json!({})), 400, "invalid_aggregate_id"),
        refused("ord%C3%A9r_1", event(json!({})), 400, "invalid_aggregate_id"),
        refused("order_1%2Bx", event(json!({})), 400, "invalid_aggregate_id"),
        refused(&too_long_id, event(json!({})), 400, "invalid_aggregate_id"),
        // Aggregate types.
        refused(
            "order_1",
            event(json!({"aggregateType": ""})),
            400,
            "invalid_aggregate_type",
        ),
        refused(
            "order_1",
            event(json!({"aggregateType": "bad type"})),
            400,
            "invalid_aggregate_type",
        ),
        refused(
            "order_1",
            event(json!({"aggregateType": "a@b"})),
            400,
            "invalid_aggregate_type",
        ),
        refused(
            "order_1",
            event(json!({"aggregateType": too_long_type})),
            400,
            "invalid_aggregate_type",
        ),
        refused(
            "nosep",
            json!({"aggregateType": "bad/type", "events": [event(json!({}))]}),
            400,
            "invalid_aggregate_type",
        ),
        // Event types.
        refused(
            "order_1",
            json!({"eventType": "", "data": {}}),
            400,
            "invalid_event_type",
        ),
        refused(
            "order_1",
            json!({"eventType": "Order Placed", "data": {}}),
            400,
            "invalid_event_type",
        ),
        refused(
            "order_1",
            json!({"eventType": "Order/Placed", "data": {}}),
            400,
            "invalid_event_type",
        ),
        refused(
            "order_1",
            json!({"eventType": too_long_event_type, "data": {}}),
            400,
            "invalid_event_type",
        ),
        refused(
            "order_1",
            batch_with(1, json!({"eventType": "bad type"})),
            400,
            "invalid_event_type",
        ),
        // Event ids.
        refused(
            "order_1",
            event(json!({"eventId": "not-a-uuid"})),
            400,
            "invalid_event_id",
        ),
        refused("order_1", event(json!({"eventId": ""})), 400, "invalid_event_id"),
        refused(
            "order_1",
            batch_with(2, json!({"eventId": "123"})),
            400,
            "invalid_event_id",
        ),
        // The same event id twice in one batch.
        {
            let id = new_event_id();
            refused(
                "order_1",
                json!({"events": [event(json!({"eventId": id})), event(json!({"eventId": id}))]}),
                400,
                "duplicate_event_id",
            )
        },
    ];
    assert_refused(&server, cases).await;
    assert!(
        server.read_log(key, 100).await.is_empty(),
        "a refused request stored something"
    );

    // The edges of what is allowed.
    let longest_id = format!("o_{}", "a".repeat(198));
    let allowed = [
        ("order_a.b:c@d-1", event(json!({}))),
        ("Order_X", event(json!({}))),
        (longest_id.as_str(), event(json!({}))),
        ("thing1", event(json!({"aggregateType": "A-z_0.9:x"}))),
        ("thing2", event(json!({"aggregateType": "t".repeat(100)}))),
        ("order_2", json!({"eventType": "A-z_0.9:x", "data": {}})),
        ("order_3", json!({"eventType": "E".repeat(200), "data": {}})),
        ("order_4", event(json!({"eventId": new_event_id().to_uppercase()}))),
    ];
    for (aggregate, body) in &allowed {
        let (status, reply) = server.append(key, aggregate, body).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{aggregate} {}: {reply}",
            truncate(&body.to_string())
        );
    }
    assert_eq!(longest_id.len(), 200);
    let (status, reply) = server.get(key, "/aggregates/order_a.b:c@d-1/events").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["aggregateType"], "order");
}

#[tokio::test]
async fn fields_are_checked_and_named() {
    let server = Server::start().await;
    let key = &server.default_key;
    let long = "c".repeat(201);
    let mut cases = vec![];
    for field in ["correlationId", "causationId"] {
        for bad in [
            json!(""),
            json!(long),
            json!("a\u{7}b"),
            json!("line\nbreak"),
            json!("tab\there"),
        ] {
            cases.push(refused(
                "order_1",
                event(json!({field: bad.clone()})),
                400,
                "invalid_field",
            ));
            let mut request_level = batch_with(0, json!({}));
            request_level[field] = bad.clone();
            cases.push(refused("order_1", request_level, 400, "invalid_field"));
            cases.push(refused(
                "order_1",
                batch_with(1, json!({field: bad})),
                400,
                "invalid_field",
            ));
        }
    }
    cases.extend([
        // data: required, an object.
        naming(
            refused("order_1", json!({"eventType": "E"}), 400, "invalid_field"),
            "data",
        ),
        naming(
            refused("order_1", json!({"eventType": "E", "data": null}), 400, "invalid_field"),
            "data",
        ),
        naming(
            refused("order_1", json!({"eventType": "E", "data": []}), 400, "invalid_field"),
            "data",
        ),
        naming(
            refused("order_1", json!({"eventType": "E", "data": "x"}), 400, "invalid_field"),
            "data",
        ),
        naming(
            refused("order_1", json!({"eventType": "E", "data": 5}), 400, "invalid_field"),
            "data",
        ),
        naming(
            refused("order_1", batch_with(1, json!({"data": "x"})), 400, "invalid_field"),
            "events[1].data",
        ),
        naming(
            refused(
                "order_1",
                json!({"events": [event(json!({})), {"eventType": "E"}]}),
                400,
                "invalid_field",
            ),
            "events[1].data",
        ),
        // metadata: an object or null.
        naming(
            refused("order_1", event(json!({"metadata": 5})), 400, "invalid_field"),
            "metadata",
        ),
        naming(
            refused("order_1", event(json!({"metadata": "x"})), 400, "invalid_field"),
            "metadata",
        ),
        naming(
            refused("order_1", event(json!({"metadata": [1]})), 400, "invalid_field"),
            "metadata",
        ),
        naming(
            refused(
                "order_1",
                batch_with(2, json!({"metadata": true})),
                400,
                "invalid_field",
            ),
            "events[2].metadata",
        ),
        // Wrong types and unknown fields: invalid_json naming the field.
        naming(
            refused("order_1", json!({"eventType": 5, "data": {}}), 400, "invalid_json"),
            "eventType",
        ),
        naming(
            refused("order_1", batch_with(1, json!({"eventType": 5})), 400, "invalid_json"),
            "events[1].eventType",
        ),
        naming(
            refused("order_1", batch_with(2, json!({"eventId": 7})), 400, "invalid_json"),
            "events[2].eventId",
        ),
        naming(
            refused("order_1", event(json!({"expectedVersion": "3"})), 400, "invalid_json"),
            "expectedVersion",
        ),
        naming(
            refused("order_1", event(json!({"expectedVersion": -1})), 400, "invalid_json"),
            "expectedVersion",
        ),
        naming(
            refused("order_1", event(json!({"expectedVersion": 1.5})), 400, "invalid_json"),
            "expectedVersion",
        ),
        naming(
            refused("order_1", event(json!({"correlationId": 5})), 400, "invalid_json"),
            "correlationId",
        ),
        naming(
            refused("order_1", event(json!({"bogus": 1})), 400, "invalid_json"),
            "bogus",
        ),
        naming(
            refused("order_1", batch_with(2, json!({"bogus": 1})), 400, "invalid_json"),
            "events[2]",
        ),
        naming(refused("order_1", json!({"events": {}}), 400, "invalid_json"), "events"),
        naming(
            refused("order_1", json!({"events": [1]}), 400, "invalid_json"),
            "events[0]",
        ),
        // Malformed JSON and bodies that are not an object.
        raw("{", 400, "invalid_json"),
        raw("{\"eventType\": \"E\", \"data\": {}", 400, "invalid_json"),
        raw("", 400, "invalid_json"),
        raw("[]", 400, "invalid_json"),
        raw("\"event\"", 400, "invalid_json"),
        raw("{\"eventType\": \"E\", \"data\": {}} trailing", 400, "invalid_json"),
        // An empty batch.
        refused("order_1", json!({"events": []}), 400, "empty_batch"),
    ]);
    assert_refused(&server, cases).await;
    assert!(
        server.read_log(key, 100).await.is_empty(),
        "a refused request stored something"
    );

    // The edges of what is allowed.
    let allowed = [
        event(json!({"metadata": null})),
        event(json!({"metadata": {"k": [1, 2]}})),
        event(json!({"correlationId": "c".repeat(200), "causationId": "émoji ✓ and spaces"})),
        event(json!({"data": {"nested": {"deep": [null, true, 1.5, "s"]}}})),
    ];
    for body in &allowed {
        let (status, reply) = server.append(key, "order_1", body).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {reply}", truncate(&body.to_string()));
    }
    let stored = server.read_stream(key, "order_1", 100).await;
    assert_eq!(stored[0]["metadata"], Value::Null);
    assert_eq!(stored[2]["causationId"], "émoji ✓ and spaces");
    assert_eq!(stored[3]["data"], json!({"nested": {"deep": [null, true, 1.5, "s"]}}));
}

#[tokio::test]
async fn size_limits_are_413() {
    let server = Server::start_with(&[
        "--max-event-bytes",
        "1024",
        "--max-batch-events",
        "5",
        "--max-request-bytes",
        "16384",
    ])
    .await;
    let key = &server.default_key;
    let blob = |n: usize| json!({"s": "x".repeat(n)});
    let six: Vec<Value> = (0..6).map(|_| event(json!({}))).collect();
    let padded = |n: usize| format!("{}{}", event(json!({})), " ".repeat(n));
    let cases = vec![
        refused("order_1", event(json!({"data": blob(2000)})), 413, "event_too_large"),
        refused(
            "order_1",
            event(json!({"metadata": blob(2000)})),
            413,
            "event_too_large",
        ),
        // data and metadata count together.
        refused(
            "order_1",
            event(json!({"data": blob(600), "metadata": blob(600)})),
            413,
            "event_too_large",
        ),
        refused(
            "order_1",
            batch_with(1, json!({"data": blob(2000)})),
            413,
            "event_too_large",
        ),
        refused("order_1", json!({"events": six}), 413, "batch_too_large"),
        raw(&padded(20_000), 413, "request_too_large"),
        raw(
            &event(json!({"data": blob(20_000)})).to_string(),
            413,
            "request_too_large",
        ),
    ];
    assert_refused(&server, cases).await;
    assert!(
        server.read_log(key, 100).await.is_empty(),
        "a refused request stored something"
    );

    // Just inside every limit.
    let five: Vec<Value> = (0..5).map(|_| event(json!({"data": blob(500)}))).collect();
    let (status, reply) = server.append(key, "order_1", &json!({"events": five})).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let (status, reply) = server
        .append(
            key,
            "order_1",
            &event(json!({"data": blob(400), "metadata": blob(400)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let request = server
        .request(Method::POST, &events_path("order_1"))
        .bearer_auth(key)
        .header("Content-Type", "application/json");
    let (status, reply) = server.send(request.body(padded(16_000))).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(server.read_log(key, 100).await.len(), 7);
}

#[tokio::test]
async fn content_type_must_be_json() {
    let server = Server::start().await;
    let key = &server.default_key;
    let body = event(json!({})).to_string();
    let post = || server.request(Method::POST, &events_path("order_1")).bearer_auth(key);
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml"] {
        let reply = server
            .send(post().header("Content-Type", content_type).body(body.clone()))
            .await;
        assert_eq!(
            reply.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}: {}",
            reply.1
        );
        assert_error(&reply, 415, "unsupported_media_type");
    }
    assert!(server.read_log(key, 100).await.is_empty());

    let (status, reply) = server
        .send(
            post()
                .header("Content-Type", "application/json; charset=utf-8")
                .body(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
}

/// A body sent with no `Content-Type` at all is not declared JSON either.
#[tokio::test]
async fn missing_content_type_is_taken_as_json() {
    // The doc: a missing Content-Type is taken as JSON; only a non-JSON one is refused.
    let server = Server::start().await;
    let key = &server.default_key;
    let request = server.request(Method::POST, &events_path("order_1")).bearer_auth(key);
    let reply = server.send(request.body(event(json!({})).to_string())).await;
    assert_eq!(reply.0, 201, "{:?}", reply.1);
    assert_eq!(server.read_log(key, 100).await.len(), 1);
}
