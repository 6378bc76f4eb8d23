//! Reading: one aggregate paged by `fromVersion`/`nextFromVersion`, the tenant's log paged by
//! `after`/`nextAfter`, and what an unknown aggregate or a bad query parameter gets.

use crate::harness::*;

const AGGREGATE_READ_KEYS: &[&str] = &["aggregateId", "aggregateType", "version", "events", "nextFromVersion"];
const LOG_READ_KEYS: &[&str] = &["events", "headPosition", "nextAfter"];

fn versions(reply: &Value) -> Vec<u64> {
    reply["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {reply}"))
        .iter()
        .map(|e| u64_of(&e["version"]))
        .collect()
}

#[tokio::test]
async fn aggregate_read_pages_with_from_version() {
    let server = Server::start().await;
    let key = &server.default_key;
    for n in 0..7 {
        let (status, reply) = server
            .append(key, "order_1", &json!({"eventType": "Step", "data": {"n": n}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
    }
    let page = async |query: &str| server.get(key, &format!("/aggregates/order_1/events?{query}")).await;

    let (status, reply) = page("fromVersion=1&limit=3").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_keys(&reply, AGGREGATE_READ_KEYS);
    assert_eq!(
        (reply["aggregateId"].clone(), reply["aggregateType"].clone()),
        (json!("order_1"), json!("order"))
    );
    assert_eq!(
        reply["version"], 7,
        "version is the aggregate's, not the page's: {reply}"
    );
    assert_eq!(versions(&reply), [1, 2, 3]);
    assert_eq!(reply["nextFromVersion"], 4);
    assert_eq!(reply["events"][2]["data"], json!({"n": 2}));

    let (_, reply) = page("fromVersion=4&limit=3").await;
    assert_eq!(
        (versions(&reply), reply["nextFromVersion"].clone()),
        (vec![4, 5, 6], json!(7)),
        "{reply}"
    );
    let (_, reply) = page("fromVersion=7&limit=3").await;
    assert_eq!(
        (versions(&reply), reply["nextFromVersion"].clone()),
        (vec![7], Value::Null),
        "{reply}"
    );
    let (_, reply) = page("fromVersion=5&limit=3").await;
    assert_eq!(
        (versions(&reply), reply["nextFromVersion"].clone()),
        (vec![5, 6, 7], Value::Null),
        "{reply}"
    );

    // Defaults: from version 1, everything (7 < 100).
    let (_, reply) = page("").await;
    assert_eq!(
        (versions(&reply), reply["nextFromVersion"].clone()),
        (vec![1, 2, 3, 4, 5, 6, 7], Value::Null),
        "{reply}"
    );

    // Past the end: nothing, and nothing more.
    let (status, reply) = page("fromVersion=8").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        (
            versions(&reply),
            reply["nextFromVersion"].clone(),
            reply["version"].clone()
        ),
        (vec![], Value::Null, json!(7))
    );
}

#[tokio::test]
async fn aggregate_read_limit_defaults_to_100_and_is_capped_at_1000() {
    let server = Server::start().await;
    let key = &server.default_key;
    let thousand: Vec<Value> = (0..1000)
        .map(|n| json!({"eventType": "Tick", "data": {"n": n}}))
        .collect();
    let (status, reply) = server.append(key, "clock_1", &json!({"events": thousand})).await;
    assert_eq!(status, StatusCode::CREATED, "{}", reply["error"]);
    assert_eq!(reply["endVersion"], 1000);
    let (status, reply) = server
        .append(key, "clock_1", &json!({"eventType": "Tick", "data": {"n": 1000}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    let (_, reply) = server.get(key, "/aggregates/clock_1/events").await;
    assert_eq!(versions(&reply), (1..=100).collect::<Vec<_>>());
    assert_eq!(reply["nextFromVersion"], 101);
    let (_, reply) = server.get(key, "/aggregates/clock_1/events?limit=5000").await;
    assert_eq!(versions(&reply), (1..=1000).collect::<Vec<_>>());
    assert_eq!(reply["nextFromVersion"], 1001);
    let (_, reply) = server
        .get(key, "/aggregates/clock_1/events?fromVersion=1001&limit=5000")
        .await;
    assert_eq!(
        (versions(&reply), reply["nextFromVersion"].clone()),
        (vec![1001], Value::Null)
    );
}

#[tokio::test]
async fn log_pages_with_after_and_next_after() {
    let server = Server::start().await;
    let key = &server.default_key;
    let (status, reply) = server.get(key, "/events").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_keys(&reply, LOG_READ_KEYS);
    assert_eq!(reply, json!({"events": [], "headPosition": 0, "nextAfter": 0}));

    let order = [
        "order_1", "cart-1", "order_1", "user_2", "cart-1", "order_1", "user_2", "order_1",
    ];
    for aggregate in order {
        let (status, reply) = server
            .append(key, aggregate, &json!({"eventType": "E", "data": {}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
    }

    let (_, reply) = server.get(key, "/events").await;
    assert_keys(&reply, LOG_READ_KEYS);
    assert_eq!(positions(&reply), (1..=8).collect::<Vec<_>>());
    let aggregates: Vec<&str> = reply["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| str_of(&e["aggregateId"]))
        .collect();
    assert_eq!(aggregates, order);
    assert_eq!(
        (reply["headPosition"].clone(), reply["nextAfter"].clone()),
        (json!(8), json!(8))
    );

    let (_, reply) = server.get(key, "/events?after=0&limit=3").await;
    assert_eq!(positions(&reply), [1, 2, 3]);
    assert_eq!(
        (reply["headPosition"].clone(), reply["nextAfter"].clone()),
        (json!(8), json!(3))
    );
    let (_, reply) = server.get(key, "/events?after=3&limit=3").await;
    assert_eq!(
        (positions(&reply), reply["nextAfter"].clone()),
        (vec![4, 5, 6], json!(6))
    );
    let (_, reply) = server.get(key, "/events?after=6&limit=3").await;
    assert_eq!((positions(&reply), reply["nextAfter"].clone()), (vec![7, 8], json!(8)));
    let (_, reply) = server.get(key, "/events?after=8").await;
    assert_eq!(reply, json!({"events": [], "headPosition": 8, "nextAfter": 8}));
    let (_, reply) = server.get(key, "/events?after=100").await;
    assert_eq!(reply, json!({"events": [], "headPosition": 8, "nextAfter": 100}));

    // Events in the log are the full event shape, versions per aggregate.
    let log = server.read_log(key, 3).await;
    assert_log_consistent(&log);
    assert_eq!(log[7]["aggregateId"], "order_1");
    assert_eq!(log[7]["version"], 4);
}

#[tokio::test]
async fn unknown_aggregate_is_not_found() {
    let server = Server::start().await;
    let key = &server.default_key;
    assert_error(
        &server.get(key, "/aggregates/order_404/events").await,
        404,
        "aggregate_not_found",
    );
    assert_error(
        &server
            .get(key, "/aggregates/order_404/events?fromVersion=3&limit=2")
            .await,
        404,
        "aggregate_not_found",
    );
}

#[tokio::test]
async fn bad_query_parameters_are_invalid_query() {
    let server = Server::start().await;
    let key = &server.default_key;
    let (status, reply) = server
        .append(key, "order_1", &json!({"eventType": "E", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    let bad = [
        "/aggregates/order_1/events?fromVersion=-1",
        "/aggregates/order_1/events?fromVersion=abc",
        "/aggregates/order_1/events?fromVersion=1.5",
        "/aggregates/order_1/events?fromVersion=",
        "/aggregates/order_1/events?limit=-5",
        "/aggregates/order_1/events?limit=ten",
        "/events?after=-1",
        "/events?after=x",
        "/events?limit=-1",
        "/events?limit=2.5",
        "/events?after=0&limit=abc",
    ];
    for path in bad {
        let reply = server.get(key, path).await;
        assert_eq!(reply.0, StatusCode::BAD_REQUEST, "GET {path}: {}", reply.1);
        assert_error(&reply, 400, "invalid_query");
    }
}
