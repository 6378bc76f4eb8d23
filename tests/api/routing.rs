//! Routes the API does not have: 404 `not_found` and 405 `method_not_allowed`, both as JSON errors.

use crate::harness::*;

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let server = Server::start().await;
    let key = &server.default_key;
    for path in [
        "/nope",
        "/aggregates",
        "/aggregates/order_1",
        "/aggregates/order_1/events/1",
        "/events/1",
        "/v1/events",
    ] {
        let reply = server.get(key, path).await;
        assert_eq!(reply.0, StatusCode::NOT_FOUND, "GET {path}: {}", reply.1);
        assert_error(&reply, 404, "not_found");
    }
    let reply = server
        .post_json(key, "/aggregates/order_1/event", &json!({"eventType": "E", "data": {}}))
        .await;
    assert_error(&reply, 404, "not_found");
    assert!(server.read_log(key, 100).await.is_empty());
}

#[tokio::test]
async fn wrong_methods_are_json_405() {
    let server = Server::start().await;
    let key = &server.default_key;
    let wrong = [
        (Method::DELETE, "/aggregates/order_1/events"),
        (Method::PUT, "/aggregates/order_1/events"),
        (Method::PATCH, "/aggregates/order_1/events"),
        (Method::POST, "/events"),
        (Method::DELETE, "/events"),
    ];
    for (method, path) in wrong {
        let request = server
            .request(method.clone(), path)
            .bearer_auth(key)
            .json(&json!({"eventType": "E", "data": {}}));
        let reply = server.send(request).await;
        assert_eq!(reply.0, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {}", reply.1);
        assert_error(&reply, 405, "method_not_allowed");
    }
    assert!(server.read_log(key, 100).await.is_empty());
}
