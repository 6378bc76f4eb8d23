//! A version that throws or hangs stops at that event, says which, and never replaces or stops the active one;
//! fixing the code and deploying again recovers.

use crate::support::*;

/// An email flagged as spam: `mailbox_faulty.cs` throws on it, `mailbox_hang.cs` never returns.
fn spam(model: &mut Mailboxes, mailbox: &str) -> Value {
    let mut event = model.received(mailbox);
    event["data"]["spam"] = json!(true);
    event
}

/// Appends one event and returns its `(eventId, position)`.
async fn append_one(api: &Api, key: &str, aggregate: &str, event: &Value) -> (String, u64) {
    let (status, body) = api.append(key, aggregate, event).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (str_of(&body["eventId"]).to_string(), u64_of(&body["globalPosition"]))
}

#[track_caller]
fn assert_stopped_at(status: &Value, position: u64, event_id: &str, error: &str) {
    let failure = &status["error"];
    assert_eq!(failure["position"], position, "{status}");
    assert_eq!(failure["eventId"], event_id, "{status}");
    assert_eq!(failure["aggregateId"], "email-spam", "{status}");
    assert_eq!(failure["error"], error, "{status}");
    assert_timestamp(str_of(&failure["failedAt"]));
}

#[tokio::test]
async fn a_throwing_apply_stops_the_pending_version_at_that_event_while_the_active_one_keeps_serving() {
    let server = start().await;
    let key = server.default_key.clone();
    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 500, 10, 4).await;
    let v1 = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    let (spam_id, spam_position) = append_one(&server, &key, "email-spam", &spam(&mut model, "mbx-0")).await;
    append_emails(&server, &key, &mut model, 50, 5, 4).await;
    let at = head(&server, &key).await;
    let active = wait_active_at(&server, &key, &v1, at).await;
    let projection = str_of(&active["projectionId"]).to_string();

    let faulty = deploy(&server, &key, "Mailbox.cs", &code("mailbox_faulty.cs")).await;
    let failed = wait_status(&server, &key, &faulty, "failed", |s| s["status"] == "failed").await;
    assert_stopped_at(&failed, spam_position, &spam_id, "user_exception");
    assert_eq!(
        failed["error"]["exceptionType"], "System.InvalidOperationException",
        "{failed}"
    );
    assert!(
        str_of(&failed["error"]["message"]).contains("spam is not handled yet"),
        "{failed}"
    );
    assert!(u64_of(&failed["position"]) < spam_position, "{failed}");

    // The active version never stopped: it serves, and still takes new events.
    append_emails(&server, &key, &mut model, 20, 2, 4).await;
    let at = head(&server, &key).await;
    let still = wait_active_at(&server, &key, &v1, at).await;
    assert_eq!(still["error"], Value::Null, "{still}");
    model.assert_v1(&server, &key, &projection).await;

    // Fixing the code and deploying again recovers.
    let fixed = deploy(&server, &key, "Mailbox.cs", &code("mailbox_v2.cs")).await;
    wait_active_at(&server, &key, &fixed, at).await;
    model.assert_v2(&server, &key, &projection).await;
}

#[tokio::test]
async fn an_active_version_stops_at_a_live_event_that_throws_keeps_serving_and_recovers_with_a_fix() {
    let server = start().await;
    let key = server.default_key.clone();
    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 200, 10, 4).await;
    let faulty = deploy(&server, &key, "Mailbox.cs", &code("mailbox_faulty.cs")).await;
    let at = head(&server, &key).await;
    let active = wait_active_at(&server, &key, &faulty, at).await;
    let projection = str_of(&active["projectionId"]).to_string();

    let before = model.clone();
    let (spam_id, spam_position) = append_one(&server, &key, "email-spam", &spam(&mut model, "mbx-1")).await;
    append_emails(&server, &key, &mut model, 30, 3, 4).await;
    let stopped = wait_status(&server, &key, &faulty, "stopped", |s| !s["error"].is_null()).await;
    assert_eq!(stopped["status"], "active", "it keeps serving: {stopped}");
    assert_eq!(stopped["stopped"], true, "{stopped}");
    assert_stopped_at(&stopped, spam_position, &spam_id, "user_exception");
    assert_eq!(stopped["position"], spam_position - 1, "{stopped}");
    assert!(u64_of(&stopped["lag"]) > 0, "{stopped}");
    before.assert_v1(&server, &key, &projection).await;

    let fixed = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    let at = head(&server, &key).await;
    wait_active_at(&server, &key, &fixed, at).await;
    model.assert_v1(&server, &key, &projection).await;
    assert_eq!(status(&server, &key, &faulty).await["status"], "superseded");
}

#[tokio::test]
async fn a_first_version_that_fails_leaves_queries_saying_so_and_a_hang_is_stopped_at_its_event() {
    let server = start().await;
    let key = server.default_key.clone();
    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 300, 10, 4).await;
    let (spam_id, spam_position) = append_one(&server, &key, "email-spam", &spam(&mut model, "mbx-2")).await;
    append_emails(&server, &key, &mut model, 300, 10, 4).await;

    // It hangs on the spam event: the batch times out, the events are run again one at a time, and the one that
    // hangs again is the one reported.
    let hang = deploy(&server, &key, "Mailbox.cs", &code("mailbox_hang.cs")).await;
    let failed = wait_status(&server, &key, &hang, "failed", |s| s["status"] == "failed").await;
    assert_stopped_at(&failed, spam_position, &spam_id, "timeout");
    let projection = str_of(&failed["projectionId"]).to_string();

    let (status, body) = query(&server, &key, &projection, "mbx-0").await;
    assert_error(&(status, body.clone()), 409, "projection_failed");
    assert_eq!(body["failure"]["position"], spam_position, "{body}");

    let fixed = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    let at = head(&server, &key).await;
    wait_active_at(&server, &key, &fixed, at).await;
    model.assert_v1(&server, &key, &projection).await;
}
