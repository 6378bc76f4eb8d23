//! Shared by the projection scenarios: a server with the C# runtime, deploys polled to a status with a deadline,
//! state queries, and the mailbox model the tests compute the expected states from.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::harness::*;

/// How long a deploy may take to reach a status: a cold compile is 1-3 s and a replay a few seconds, on a small
/// shared box.
pub const DEADLINE: Duration = Duration::from_secs(120);
/// How often a status is asked again.
const POLL: Duration = Duration::from_millis(20);

/// `hapnd serve` on a temp data dir with the C# programs, plus `extra` options.
pub async fn start_with(extra: &[&str]) -> Server {
    let host = path_arg(crate::dotnet_build::dotnet_host_build());
    let mut args = vec!["--dotnet-host", &host];
    args.extend_from_slice(extra);
    Server::start_with(&args).await
}

pub async fn start() -> Server {
    start_with(&[]).await
}

/// `tests/projections/code/NAME`.
pub fn code(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/projections/code")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `POST /projections {"files": {name: source}}`; the `uploadId` of the accepted deploy.
pub async fn deploy(api: &Api, key: &str, name: &str, source: &str) -> String {
    let (status, body) = api
        .post_json(key, "/projections", &json!({"files": {name: source}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "deploy: {body}");
    assert_keys(&body, &["uploadId", "projectionId", "status"]);
    assert_eq!(body["projectionId"], Value::Null, "{body}");
    assert_eq!(body["status"], "compiling", "{body}");
    let id = str_of(&body["uploadId"]).to_string();
    assert_uuid(&id);
    id
}

/// `GET /projections/{upload}/status`.
pub async fn status(api: &Api, key: &str, upload: &str) -> Value {
    let (status, body) = api.get(key, &format!("/projections/{upload}/status")).await;
    assert_eq!(status, StatusCode::OK, "status of {upload}: {body}");
    assert_eq!(body["uploadId"], upload, "{body}");
    body
}

/// Polls the deploy's status until `done` holds; returns that status.
pub async fn wait_status(api: &Api, key: &str, upload: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let body = status(api, key, upload).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "deploy {upload} not {what} after {DEADLINE:?}: {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the deploy is the active version and has applied the log up to `head`; returns its status.
pub async fn wait_active_at(api: &Api, key: &str, upload: &str, head: u64) -> Value {
    let body = wait_status(api, key, upload, &format!("active at {head}"), |s| {
        assert_ne!(s["status"], "failed", "the deploy failed: {s}");
        s["status"] == "active" && s["position"].as_u64().is_some_and(|p| p >= head)
    })
    .await;
    assert!(str_of(&body["projectionId"]).starts_with("proj_"), "{body}");
    assert_eq!(body["position"], head, "{body}");
    body
}

/// `GET /projections/{projection}/state/{key}`.
pub async fn query(api: &Api, key: &str, projection: &str, row: &str) -> Reply {
    api.get(key, &format!("/projections/{projection}/state/{row}")).await
}

/// The state of a row that must exist; checks the documented shape.
pub async fn row_state(api: &Api, key: &str, projection: &str, row: &str) -> Value {
    let (status, body) = query(api, key, projection, row).await;
    assert_eq!(status, StatusCode::OK, "query {row}: {body}");
    assert_keys(&body, &["key", "state", "position"]);
    assert_eq!(body["key"], row, "{body}");
    body["state"].clone()
}

/// The tenant's head position.
pub async fn head(api: &Api, key: &str) -> u64 {
    let (status, body) = api.get(key, "/events?after=0&limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    u64_of(&body["headPosition"])
}

/// What the tests append: emails received and read in mailboxes, and events the mailbox projection skips.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub unread: i64,
    pub received: i64,
    pub read: i64,
}

/// The expected mailbox rows, kept as the test appends.
#[derive(Debug, Default, Clone)]
pub struct Mailboxes(pub BTreeMap<String, Mailbox>);

impl Mailboxes {
    pub fn received(&mut self, mailbox: &str) -> Value {
        let row = self.0.entry(mailbox.to_owned()).or_default();
        row.unread += 1;
        row.received += 1;
        json!({"eventType": "EmailReceived", "data": {"mailboxId": mailbox, "subject": "hello"}})
    }

    pub fn read(&mut self, mailbox: &str) -> Value {
        let row = self.0.entry(mailbox.to_owned()).or_default();
        row.unread -= 1;
        row.read += 1;
        json!({"eventType": "EmailRead", "data": {"mailboxId": mailbox}})
    }

    /// An event without a mailbox: the projection skips it.
    pub fn unrelated() -> Value {
        json!({"eventType": "EmailArchived", "data": {"folder": "old"}})
    }

    /// Checks the v1 state (`mailbox.cs`) of every row against the model.
    pub async fn assert_v1(&self, api: &Api, key: &str, projection: &str) {
        for (mailbox, row) in &self.0 {
            let state = row_state(api, key, projection, mailbox).await;
            assert_eq!(
                state,
                json!({"unread": row.unread, "received": row.received}),
                "mailbox {mailbox}"
            );
        }
    }

    /// Checks the v2 state (`mailbox_v2.cs`) of every row against the model.
    pub async fn assert_v2(&self, api: &Api, key: &str, projection: &str) {
        for (mailbox, row) in &self.0 {
            let state = row_state(api, key, projection, mailbox).await;
            assert_eq!(
                state,
                json!({"unread": row.unread, "received": row.received, "read": row.read, "version": 2}),
                "mailbox {mailbox}"
            );
        }
    }
}

/// Appends `count` events over `aggregates` `email-*` aggregates and `mailboxes` mailboxes, in batches of one
/// aggregate's events; every fifth event is a read, every seventh one the projection skips.
pub async fn append_emails(
    api: &Api,
    key: &str,
    model: &mut Mailboxes,
    count: usize,
    aggregates: usize,
    mailboxes: usize,
) {
    let per_batch = 100;
    let mut appended = 0;
    let mut round = 0;
    while appended < count {
        let aggregate = format!("email-{}", round % aggregates);
        let events: Vec<Value> = (0..per_batch.min(count - appended))
            .map(|i| {
                let n = appended + i;
                let mailbox = format!("mbx-{}", n % mailboxes);
                if n % 7 == 6 {
                    Mailboxes::unrelated()
                } else if n % 5 == 4 {
                    model.read(&mailbox)
                } else {
                    model.received(&mailbox)
                }
            })
            .collect();
        appended += events.len();
        let (status, body) = api.append(key, &aggregate, &json!({"events": events})).await;
        assert_eq!(status, StatusCode::CREATED, "append: {body}");
        round += 1;
    }
}
