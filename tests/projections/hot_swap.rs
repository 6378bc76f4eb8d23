//! Redeploys: the new version replays from the start in its own state space while the active one keeps serving,
//! then takes over in one step; a newer upload wins over a pending one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::*;

const MAILBOXES: usize = 8;

#[tokio::test]
async fn a_redeploy_under_continuous_appends_never_answers_202_or_a_missing_key_and_ends_on_the_new_code() {
    let server = start().await;
    let key = server.default_key.clone();
    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 5_000, 50, MAILBOXES).await;
    let v1 = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    let at = head(&server, &key).await;
    let v1_status = wait_active_at(&server, &key, &v1, at).await;
    let projection = str_of(&v1_status["projectionId"]).to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (api, key, stop) = (server.api(), key.clone(), stop.clone());
        tokio::spawn(async move {
            let mut written = Mailboxes::default();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let mailbox = format!("mbx-{}", n % MAILBOXES);
                let event = if n % 3 == 2 {
                    written.read(&mailbox)
                } else {
                    written.received(&mailbox)
                };
                let (status, body) = api.append(&key, &format!("email-live-{}", n % 20), &event).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                n += 1;
            }
            written
        })
    };
    let reader = {
        let (api, key, stop, projection) = (server.api(), key.clone(), stop.clone(), projection.clone());
        tokio::spawn(async move {
            let mut queries = 0u64;
            let mut last_position = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for m in 0..MAILBOXES {
                    let (status, body) = query(&api, &key, &projection, &format!("mbx-{m}")).await;
                    assert_eq!(status, StatusCode::OK, "a query during the redeploy: {body}");
                    assert_keys(&body, &["key", "state", "position"]);
                    let position = u64_of(&body["position"]);
                    assert!(
                        position >= last_position,
                        "the served position went back: {last_position} -> {position}"
                    );
                    last_position = position;
                    queries += 1;
                }
            }
            queries
        })
    };

    let v2 = deploy(&server, &key, "Mailbox.cs", &code("mailbox_v2.cs")).await;
    let pending = wait_status(&server, &key, &v2, "catching up or active", |s| {
        s["status"] == "catching_up" || s["status"] == "active"
    })
    .await;
    assert_eq!(pending["projectionId"], projection.as_str(), "{pending}");
    let swapped = wait_status(&server, &key, &v2, "active", |s| s["status"] == "active").await;
    // Keep writing a little after the swap, so the new version also takes live events.
    let after_swap = u64_of(&swapped["position"]) + 50;
    while head(&server, &key).await < after_swap {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    let queries = reader.await.expect("reader");
    assert!(queries > 0);

    for (mailbox, row) in written.0 {
        let total = model.0.entry(mailbox).or_default();
        total.unread += row.unread;
        total.received += row.received;
        total.read += row.read;
    }
    let at = head(&server, &key).await;
    wait_active_at(&server, &key, &v2, at).await;
    model.assert_v2(&server, &key, &projection).await;
    let old = status(&server, &key, &v1).await;
    assert_eq!(old["status"], "superseded", "{old}");
    assert_timestamp(str_of(&old["endedAt"]));
}

#[tokio::test]
async fn of_two_quick_redeploys_the_latest_wins_and_the_other_is_abandoned() {
    let server = start().await;
    let key = server.default_key.clone();
    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 3_000, 30, MAILBOXES).await;
    let v1 = deploy(&server, &key, "Mailbox.cs", &code("mailbox.cs")).await;
    let at = head(&server, &key).await;
    let v1_status = wait_active_at(&server, &key, &v1, at).await;
    let projection = str_of(&v1_status["projectionId"]).to_string();

    // The slow one (5 ms an event) would replay for many seconds; the next upload comes while it is pending.
    let slow = deploy(
        &server,
        &key,
        "Mailbox.cs",
        &code("mailbox_slow.cs").replace("200_000", "5_000_000"),
    )
    .await;
    wait_status(&server, &key, &slow, "catching up", |s| s["status"] == "catching_up").await;
    let latest = deploy(&server, &key, "Mailbox.cs", &code("mailbox_v2.cs")).await;
    wait_active_at(&server, &key, &latest, at).await;
    model.assert_v2(&server, &key, &projection).await;
    let abandoned = wait_status(&server, &key, &slow, "abandoned", |s| s["status"] != "compiling").await;
    assert_eq!(abandoned["status"], "abandoned", "{abandoned}");
    assert_eq!(abandoned["projectionId"], projection.as_str(), "{abandoned}");
    assert_eq!(status(&server, &key, &v1).await["status"], "superseded");
}
