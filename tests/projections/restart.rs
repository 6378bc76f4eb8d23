//! A version killed half-way through its catch-up resumes from its checkpoint after a restart and ends in the same
//! state as one that never stopped.

use crate::support::*;

#[tokio::test]
async fn killing_the_server_mid_catch_up_resumes_from_the_checkpoint_with_the_same_final_state() {
    // Small batches and frequent checkpoints, and an Apply of about 100 µs: the catch-up takes seconds.
    let mut server = start_with(&["--projection-batch-events", "50", "--projection-flush-events", "200"]).await;
    let key = server.default_key.clone();
    let mut model = Mailboxes::default();
    append_emails(&server, &key, &mut model, 8_000, 40, 12).await;
    let at = head(&server, &key).await;
    let upload = deploy(&server, &key, "Mailbox.cs", &code("mailbox_slow.cs")).await;
    let midway = wait_status(&server, &key, &upload, "half-way", |s| {
        assert_ne!(
            s["status"], "active",
            "the catch-up ended before the test could stop it: {s}"
        );
        s["status"] == "catching_up" && s["position"].as_u64().is_some_and(|p| p > 0)
    })
    .await;
    server.kill9();
    let checkpoint = u64_of(&midway["position"]);
    assert!(checkpoint < at, "{midway}");

    server.restart().await;
    let resumed = status(&server, &key, &upload).await;
    assert_eq!(resumed["status"], "catching_up", "{resumed}");
    assert!(
        u64_of(&resumed["position"]) >= checkpoint,
        "it resumes from its checkpoint: {resumed} after {midway}"
    );
    let active = wait_active_at(&server, &key, &upload, at).await;
    model.assert_v1(&server, &key, str_of(&active["projectionId"])).await;
}
