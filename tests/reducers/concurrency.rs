//! Eight writers race on one aggregate with `expectedVersion` while a reducer is bound: exactly one wins each version,
//! the rest get 409, versions end gapless, and every winner's state equals a sequential replay of events 1..=version
//! (computed here from the stored events, by the same rules as `code/ledger.cs`).

use std::time::{Duration, Instant};

use crate::support::*;

const WRITERS: usize = 8;
/// Writers stop once the aggregate reached this version.
const TARGET_VERSION: u64 = 48;
const AGGREGATE: &str = "ledger-hot";
const DEADLINE: Duration = Duration::from_secs(120);

/// One successful append: the version it got and the state it was answered with.
struct Win {
    writer: usize,
    tag: String,
    version: u64,
    state: Value,
}

/// The ledger state after `entries` (tag, amount), in order: `{tags, sum, lastVersion}`.
fn replay(entries: &[(String, i64)]) -> Value {
    let tags: Vec<&str> = entries.iter().map(|(tag, _)| tag.as_str()).collect();
    let sum: i64 = entries.iter().map(|(_, amount)| amount).sum();
    json!({"tags": tags, "sum": sum, "lastVersion": entries.len()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_expected_version_match_a_sequential_replay() {
    let server = start().await;
    let key = server.default_key.clone();
    let ready = upload_ready(&server, &key, "LedgerReducer.cs", &code("ledger.cs"), Some("ledger")).await;
    let reducer_id = str_of(&ready["reducerId"]).to_string();

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (api, key) = (server.api(), key.clone());
            tokio::spawn(async move { write(api, key, writer).await })
        })
        .collect();
    let mut wins = Vec::new();
    let mut conflicts = 0;
    for writer in writers {
        let (won, lost) = writer.await.expect("writer task");
        wins.extend(won);
        conflicts += lost;
    }

    // Exactly one success per version, 1..=N with no gap, and the stream is exactly the winners' events.
    wins.sort_by_key(|w| w.version);
    let versions: Vec<u64> = wins.iter().map(|w| w.version).collect();
    let expected: Vec<u64> = (1..=versions.len() as u64).collect();
    assert_eq!(versions, expected, "one success per version, no gaps");
    assert!(versions.len() as u64 >= TARGET_VERSION, "{} versions", versions.len());
    let stream = server.read_stream(&key, AGGREGATE, 1000).await;
    assert_eq!(stream.len(), wins.len(), "every stored event is some writer's success");
    let mut entries = Vec::new();
    for (event, win) in stream.iter().zip(&wins) {
        assert_eq!(event["version"], win.version, "{event}");
        assert_eq!(
            event["data"]["tag"],
            win.tag.as_str(),
            "writer {}'s win at {}: {event}",
            win.writer,
            win.version
        );
        let amount = event["data"]["amount"].as_i64().expect("an integer amount");
        entries.push((win.tag.clone(), amount));
        // Every answer is the state after exactly the events up to its version.
        assert_eq!(
            win.state,
            replay(&entries),
            "state answered to writer {} at version {}",
            win.writer,
            win.version
        );
    }
    let state = state_at(&server, &key, AGGREGATE, entries.len() as u64, &reducer_id).await;
    assert_eq!(state, replay(&entries), "the state read");
    eprintln!("{} versions, {conflicts} conflicts", entries.len());
}

/// One writer: reads the version, appends with `expectedVersion`, and records what it won; until the aggregate is
/// at [`TARGET_VERSION`]. Returns its wins and its 409 count; any other answer fails the test.
async fn write(api: Api, key: String, writer: usize) -> (Vec<Win>, usize) {
    let deadline = Instant::now() + DEADLINE;
    let mut wins = Vec::new();
    let mut conflicts = 0;
    let mut attempt = 0_usize;
    loop {
        attempt += 1;
        assert!(
            Instant::now() < deadline,
            "writer {writer} is still writing after {DEADLINE:?}"
        );
        let (status, read) = api.get(&key, &format!("{}?limit=1", events_path(AGGREGATE))).await;
        let version = match status {
            StatusCode::OK => u64_of(&read["version"]),
            StatusCode::NOT_FOUND => 0,
            _ => panic!("writer {writer}: reading the version: {status} {read}"),
        };
        if version >= TARGET_VERSION {
            return (wins, conflicts);
        }
        let tag = format!("w{writer}-{attempt}");
        let amount = i64::try_from(writer * 1000 + attempt).expect("a small amount");
        let body = json!({
            "eventType": "Entered",
            "data": {"tag": tag, "amount": amount},
            "expectedVersion": version,
        });
        let (status, reply) = api.append(&key, AGGREGATE, &body).await;
        match status {
            StatusCode::CREATED => {
                assert_eq!(reply["version"], version + 1, "writer {writer}: {reply}");
                wins.push(Win {
                    writer,
                    tag,
                    version: version + 1,
                    state: reply["state"].clone(),
                });
            }
            StatusCode::CONFLICT => {
                assert_eq!(reply["error"], "concurrency", "writer {writer}: {reply}");
                assert_eq!(reply["expectedVersion"], version, "writer {writer}: {reply}");
                assert!(u64_of(&reply["actualVersion"]) > version, "writer {writer}: {reply}");
                conflicts += 1;
            }
            _ => panic!("writer {writer}: append at {version}: {status} {reply}"),
        }
    }
}
