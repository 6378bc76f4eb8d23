//! Authentication: a request needs `Authorization: Bearer <key>` with a live key of some tenant; anything else is
//! 401 JSON. Keys are created and revoked with the command-line tool, revocation taking effect at once.

use crate::harness::*;

#[tokio::test]
async fn requests_without_a_valid_key_are_unauthorized() {
    let server = Server::start().await;
    let path = events_path("order_1");
    let body = json!({"eventType": "OrderPlaced", "data": {}});
    let good = &server.default_key;
    let bad_headers = [
        "Basic dXNlcjpwYXNz".to_string(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        format!("Token {good}"),
        good.to_string(),
        format!("Bearer {good}x"),
        format!("Bearer {}", &good[..good.len() - 1]),
        "Bearer hpd_unknown0000000000000000000000".to_string(),
        "Bearer not-a-key".to_string(),
    ];

    // No header at all.
    for method in [Method::GET, Method::POST] {
        let request = server.request(method.clone(), &path).json(&body);
        assert_error(&server.send(request).await, 401, "unauthorized");
    }
    assert_error(
        &server.send(server.request(Method::GET, "/events")).await,
        401,
        "unauthorized",
    );

    for header in &bad_headers {
        let post = server
            .request(Method::POST, &path)
            .header("Authorization", header)
            .json(&body);
        let reply = server.send(post).await;
        assert_eq!(
            reply.0,
            StatusCode::UNAUTHORIZED,
            "Authorization: {header:?} -> {}",
            reply.1
        );
        assert_error(&reply, 401, "unauthorized");
        let get = server.request(Method::GET, "/events").header("Authorization", header);
        assert_error(&server.send(get).await, 401, "unauthorized");
    }

    // Nothing got in.
    assert!(server.read_log(good, 100).await.is_empty());
}

#[tokio::test]
async fn second_key_works_and_revoked_key_is_refused_at_once() {
    let server = Server::start().await;
    let first = &server.default_key;
    let tenants = server.cli_json(&["tenant", "list", "--json"]).await;
    assert_eq!(
        tenants.as_array().map(Vec::len),
        Some(1),
        "a fresh data dir has only the default tenant: {tenants}"
    );
    let default_tenant = str_of(&tenants[0]["tenantId"]).to_string();

    let (status, reply) = server
        .append(first, "order_1", &json!({"eventType": "OrderPlaced", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    // A second key of the same tenant sees and writes the same data.
    let (second_id, second) = server.create_key(&default_tenant).await;
    assert_ne!(&second, first);
    assert_eq!(server.read_stream(&second, "order_1", 100).await.len(), 1);
    let (status, reply) = server
        .append(&second, "order_1", &json!({"eventType": "Paid", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["version"], 2);

    let keys = server
        .cli_json(&["key", "list", "--tenant", &default_tenant, "--json"])
        .await;
    let listed: Vec<&str> = keys
        .as_array()
        .unwrap_or_else(|| panic!("key list is not an array: {keys}"))
        .iter()
        .map(|k| str_of(&k["keyId"]))
        .collect();
    assert_eq!(listed.len(), 2, "{keys}");
    assert!(listed.contains(&second_id.as_str()), "{keys}");
    assert!(
        !keys.to_string().contains(&second),
        "key list must not print secrets: {keys}"
    );

    // Revoked while the server runs: the very next request is refused; the other key still works.
    let out = server.cli(&["key", "revoke", &second_id]).await;
    assert!(
        out.status.success(),
        "key revoke failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_error(&server.get(&second, "/events").await, 401, "unauthorized");
    let reply = server
        .append(&second, "order_1", &json!({"eventType": "Shipped", "data": {}}))
        .await;
    assert_error(&reply, 401, "unauthorized");
    let (status, reply) = server.get(first, "/aggregates/order_1/events").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["version"], 2, "the refused append stored nothing: {reply}");
}

#[tokio::test]
async fn key_for_another_tenant_sees_only_that_tenant() {
    let server = Server::start().await;
    let beta = server.create_tenant("beta").await;
    let (_, beta_second) = server.create_key("beta").await;
    let (status, reply) = server
        .append(&beta, "order_1", &json!({"eventType": "OrderPlaced", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(server.read_log(&beta_second, 100).await.len(), 1);
    assert!(server.read_log(&server.default_key, 100).await.is_empty());

    let out = server
        .cli(&["key", "create", "--tenant", "nosuchtenant", "--json"])
        .await;
    assert!(!out.status.success(), "a key for an unknown tenant must be refused");
}
