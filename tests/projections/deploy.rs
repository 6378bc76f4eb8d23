//! Deploys: identities and projection ids, compile errors, code of the wrong kind, and tenants apart.

use crate::support::*;

#[tokio::test]
async fn every_upload_of_an_identity_keeps_its_projection_id_and_a_renamed_class_makes_a_new_one() {
    let server = start().await;
    let key = server.default_key.clone();
    let first = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    let first = wait_active_at(&server, &key, &first, 0).await;
    let second = deploy(&server, &key, "Mailbox.cs", &code("mailbox_v2.cs")).await;
    let second = wait_active_at(&server, &key, &second, 0).await;
    assert_eq!(
        first["projectionId"], second["projectionId"],
        "same [ProjectionName]: {first} {second}"
    );

    // Without the attribute the identity is the class's full name: renaming the class makes a new projection.
    let unnamed = code("mailbox.cs").replace("[ProjectionName(\"mailbox\")]", "");
    let plain = deploy(&server, &key, "Mailbox.cs", &unnamed).await;
    let plain = wait_active_at(&server, &key, &plain, 0).await;
    let renamed = deploy(
        &server,
        &key,
        "Mailbox.cs",
        &unnamed.replace("class MailboxProjection", "class InboxProjection"),
    )
    .await;
    let renamed = wait_active_at(&server, &key, &renamed, 0).await;
    let ids: std::collections::HashSet<&str> = [&first, &plain, &renamed]
        .iter()
        .map(|s| str_of(&s["projectionId"]))
        .collect();
    assert_eq!(ids.len(), 3, "{first} {plain} {renamed}");
}

#[tokio::test]
async fn compile_errors_wrong_kinds_and_bad_bodies_are_refused_with_reasons() {
    let server = start().await;
    let key = server.default_key.clone();
    let broken = deploy(
        &server,
        &key,
        "Mailbox.cs",
        &code("mailbox.cs").replace("row with", "row wit"),
    )
    .await;
    let failed = wait_status(&server, &key, &broken, "failed", |s| s["status"] != "compiling").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let diagnostics = failed["diagnostics"].as_array().expect("diagnostics");
    assert!(
        diagnostics
            .iter()
            .any(|d| d["file"] == "Mailbox.cs" && d["line"].is_u64() && d["column"].is_u64()),
        "{failed}"
    );

    let reducer = deploy(
        &server,
        &key,
        "Order.cs",
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/legit/order_reducer.cs"),
        )
        .expect("read"),
    )
    .await;
    let failed = wait_status(&server, &key, &reducer, "failed", |s| s["status"] != "compiling").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["diagnostics"][0]["code"], "HAPND_WRONG_KIND", "{failed}");
    assert!(str_of(&failed["message"]).contains("/reducers"), "{failed}");

    let (status, body) = server
        .post_json(
            &key,
            "/projections",
            &json!({"files": {"M.cs": code("mailbox.cs")}, "aggregateType": "email"}),
        )
        .await;
    assert_error(&(status, body), 400, "invalid_field");
    let (status, body) = server.post_json(&key, "/projections", &json!({"files": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = server.get(&key, "/projections/not-a-uuid/status").await;
    assert_error(&(status, body), 404, "not_found");
    // A reducer's upload is not a projection's.
    let (status, body) = server
        .get(&key, &format!("/projections/{}/status", uuid_v4_like()))
        .await;
    assert_error(&(status, body), 404, "not_found");
}

#[tokio::test]
async fn tenants_with_the_same_projection_see_only_their_own_events() {
    let server = start().await;
    let a = server.default_key.clone();
    let b = server.create_tenant("other").await;
    let mut model_a = Mailboxes::default();
    let mut model_b = Mailboxes::default();
    append_emails(&server, &a, &mut model_a, 300, 10, 3).await;
    append_emails(&server, &b, &mut model_b, 120, 5, 3).await;
    let upload_a = deploy(&server, &a, "Mailbox.cs", &code("mailbox.cs")).await;
    let upload_b = deploy(&server, &b, "Mailbox.cs", &code("mailbox.cs")).await;
    let head_a = head(&server, &a).await;
    let head_b = head(&server, &b).await;
    let status_a = wait_active_at(&server, &a, &upload_a, head_a).await;
    let status_b = wait_active_at(&server, &b, &upload_b, head_b).await;
    let (pa, pb) = (str_of(&status_a["projectionId"]), str_of(&status_b["projectionId"]));
    assert_ne!(pa, pb, "projection ids are per tenant");
    model_a.assert_v1(&server, &a, pa).await;
    model_b.assert_v1(&server, &b, pb).await;
    // Another tenant's projection and deploy do not exist.
    let (status, body) = query(&server, &b, pa, "mbx-0").await;
    assert_error(&(status, body), 404, "projection_not_found");
    let (status, body) = server.get(&b, &format!("/projections/{upload_a}/status")).await;
    assert_error(&(status, body), 404, "not_found");
}

fn uuid_v4_like() -> String {
    "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b".to_string()
}
