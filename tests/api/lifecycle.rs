//! Stopping and starting: SIGTERM drains and exits 0, a restart on the same data dir keeps events, tenants and keys
//! (and does not print the default key again), and every write acknowledged while draining is kept.

use crate::harness::*;

#[tokio::test]
async fn restart_keeps_events_tenants_and_keys() {
    let mut server = Server::start().await;
    let key = server.default_key.clone();
    let body = json!({"events": [{"eventType": "OrderPlaced", "data": {"c": 1}}, {"eventType": "Paid", "data": {}}]});
    let (status, reply) = server.append(&key, "order_1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let (status, reply) = server
        .append(
            &key,
            "cart-1",
            &json!({"eventType": "Opened", "data": {}, "metadata": {"m": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let beta = server.create_tenant("beta").await;
    let (status, reply) = server
        .append(
            &beta,
            "order_1",
            &json!({"eventType": "OrderPlaced", "data": {"tenant": "beta"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let (revoked_id, revoked) = server.create_key("beta").await;
    let out = server.cli(&["key", "revoke", &revoked_id]).await;
    assert!(
        out.status.success(),
        "key revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = server.read_log(&key, 100).await;
    let beta_before = server.read_log(&beta, 100).await;

    let status = server.stop_sigterm().await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must exit 0; stderr:\n{}",
        server.stderr()
    );

    server.restart().await;
    let stdout = server.stdout();
    assert!(
        !stdout.contains("default tenant api key"),
        "the default key is printed only on the first start:\n{stdout}"
    );
    let (status, _) = server.get_text("/readyz").await;
    assert_eq!(status, StatusCode::OK);

    // Events, tenants and keys are all still there, exactly as they were.
    assert_eq!(server.read_log(&key, 100).await, before);
    assert_eq!(server.read_log(&beta, 100).await, beta_before);
    assert_error(&server.get(&revoked, "/events").await, 401, "unauthorized");
    let tenants = server.cli_json(&["tenant", "list", "--json"]).await;
    assert!(
        tenants
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["tenantId"] == "beta")),
        "{tenants}"
    );

    // Versions and positions continue where they were.
    let (status, reply) = server
        .append(&key, "order_1", &json!({"eventType": "Shipped", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(
        (reply["version"].clone(), reply["globalPosition"].clone()),
        (json!(3), json!(4)),
        "{reply}"
    );
    let (status, reply) = server
        .append(&beta, "order_1", &json!({"eventType": "Paid", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(
        (reply["version"].clone(), reply["globalPosition"].clone()),
        (json!(2), json!(2)),
        "{reply}"
    );

    // And a second clean stop works too.
    let status = server.stop_sigterm().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_keeps_every_acknowledged_write() {
    let mut server = Server::start().await;
    let key = server.default_key.clone();
    let writers = Writers::spawn(&server.api(), &key, 6);
    writers.wait_for_acks(100).await;

    // Writers are still writing while the server drains.
    server.send_sigterm();
    let status = server.wait_exit().await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must exit 0; stderr:\n{}",
        server.stderr()
    );
    let (acks, refusals) = writers.join().await;
    eprintln!(
        "{} events acknowledged, {} requests refused",
        acks.len(),
        refusals.len()
    );
    for refusal in &refusals {
        assert_error(refusal, 503, "unavailable");
    }

    server.restart().await;
    let log = server.read_log(&key, 250).await;
    assert!(
        log.len() >= acks.len(),
        "{} acknowledged but {} stored",
        acks.len(),
        log.len()
    );
    assert_log_consistent(&log);
    assert_acks_stored(&log, &acks);
}
