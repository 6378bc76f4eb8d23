//! The mailbox projection: events from many `email-*` aggregates grouped by the `mailboxId` in their data.

use crate::support::*;

#[tokio::test]
async fn unread_counts_group_emails_of_many_aggregates_by_mailbox_and_follow_new_events() {
    let server = start().await;
    let key = server.default_key.clone();
    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 700, 40, 6).await;

    let upload = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    let at = head(&server, &key).await;
    let active = wait_active_at(&server, &key, &upload, at).await;
    let projection = str_of(&active["projectionId"]).to_string();
    assert_eq!(active["lag"], 0, "{active}");
    assert_eq!(active["headPosition"], at, "{active}");
    assert_eq!(active["className"], "MailboxProjection", "{active}");
    assert_timestamp(str_of(&active["activatedAt"]));
    model.assert_v1(&server, &key, &projection).await;
    let (status, body) = query(&server, &key, &projection, "mbx-0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["position"], at,
        "a query answers as of the version's position: {body}"
    );

    // Keys that no event resolved to do not exist.
    let (status, body) = query(&server, &key, &projection, "mbx-unknown").await;
    assert_error(&(status, body.clone()), 404, "key_not_found");
    let (status, body) = query(&server, &key, "proj_000000000000000000000000", "mbx-0").await;
    assert_error(&(status, body), 404, "projection_not_found");

    // New events reach the active version without a redeploy.
    let new_mailbox = "mbx-late";
    let (status, body) = server
        .append(
            &key,
            "email-late",
            &json!({"events": [model.received(new_mailbox), model.received("mbx-0")]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let at = head(&server, &key).await;
    wait_active_at(&server, &key, &upload, at).await;
    model.assert_v1(&server, &key, &projection).await;

    // Lag and rate per version are in /metrics (refreshed every second), and the events counted.
    let label = format!("projection=\"{projection}\"");
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (status, text) = server.get_text("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let has = |metric: &str| {
            text.lines()
                .any(|line| line.starts_with(metric) && line.contains(&label))
        };
        let lag = text
            .lines()
            .find(|line| line.starts_with("hapnd_projection_lag_events{") && line.contains(&label))
            .and_then(|line| line.rsplit(' ').next());
        // The gauges are refreshed every second: one taken during the catch-up may still show its lag.
        if lag == Some("0") && has("hapnd_projection_events_per_second{") {
            assert!(has("hapnd_projection_events_total{"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no caught-up projection metrics: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The projection is listed with its active version.
    let (status, listed) = server.get(&key, "/projections").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let projections = listed["projections"].as_array().expect("a list");
    assert_eq!(projections.len(), 1, "{listed}");
    assert_eq!(projections[0]["projectionId"], projection.as_str(), "{listed}");
    assert_eq!(projections[0]["name"], "mailbox", "{listed}");
    assert_eq!(projections[0]["active"]["uploadId"], upload.as_str(), "{listed}");
    assert_eq!(projections[0]["pending"], Value::Null, "{listed}");
}

#[tokio::test]
async fn a_projection_deployed_after_ten_thousand_events_ends_in_the_state_of_one_that_ran_from_the_start() {
    let server = start().await;
    let key = server.default_key.clone();
    // The same code under two identities: one deployed before any event, one after them all.
    let early_code = code("mailbox.cs").replace("[ProjectionName(\"mailbox\")]", "[ProjectionName(\"mailbox-early\")]");
    let early = deploy(&server, &key, "Mailbox.cs", &early_code).await;
    let early_status = wait_active_at(&server, &key, &early, 0).await;
    let early_projection = str_of(&early_status["projectionId"]).to_string();

    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 10_000, 100, 25).await;
    let at = head(&server, &key).await;
    assert!(at >= 10_000, "{at}");

    let late = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    // Before its first version is active, a query says so: 202, never a partial state.
    let projection = loop {
        let status = status(&server, &key, &late).await;
        if let Some(projection) = status["projectionId"].as_str() {
            break projection.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    loop {
        let status_now = status(&server, &key, &late).await;
        let (code, body) = query(&server, &key, &projection, "mbx-0").await;
        if status_now["status"] == "catching_up" {
            assert!(code == StatusCode::ACCEPTED || code == StatusCode::OK, "{code} {body}");
            if code == StatusCode::ACCEPTED {
                assert_eq!(body["status"], "catching_up", "{body}");
            }
        }
        if status_now["status"] == "active" {
            break;
        }
        assert_eq!(status_now["status"], "catching_up", "{status_now}");
        for field in ["position", "headPosition", "lag", "eventsPerSecond"] {
            assert!(status_now[field].is_u64(), "catching_up shows {field}: {status_now}");
        }
    }
    wait_active_at(&server, &key, &late, at).await;
    wait_active_at(&server, &key, &early, at).await;
    model.assert_v1(&server, &key, &projection).await;
    model.assert_v1(&server, &key, &early_projection).await;
    assert_ne!(projection, early_projection);
}
