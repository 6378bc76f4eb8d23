//! Concurrent writers: global positions stay gapless and unique, versions gapless per aggregate, and on one
//! aggregate with `expectedVersion` exactly one writer wins each version.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Barrier;

use crate::harness::*;

const WRITERS: usize = 8;
const REQUESTS_PER_WRITER: usize = 25;
/// Fewer aggregates than writers, so writers collide on the same aggregates.
const AGGREGATES: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_gapless_positions_and_versions() {
    let server = Server::start().await;
    concurrent_writers_scenario(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_gapless_positions_and_versions_across_shards() {
    let server = Server::start_with(&["--shards", "3", "--durability", "normal"]).await;
    concurrent_writers_scenario(&server).await;
}

/// 8 writers each send 25 requests (singles and batches of 3) over 6 shared aggregates, without `expectedVersion`.
async fn concurrent_writers_scenario(server: &Server) {
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let api = server.api();
        let key = server.default_key.clone();
        writers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..REQUESTS_PER_WRITER {
                let aggregate = format!("acct-{}", (writer + i) % AGGREGATES);
                let event = |n: usize| json!({"eventType": "Deposited", "data": {"writer": writer, "i": i, "n": n}});
                let body = if i % 3 == 0 {
                    json!({"events": [event(0), event(1), event(2)]})
                } else {
                    event(0)
                };
                let (status, reply) = api.append(&key, &aggregate, &body).await;
                assert_eq!(status, StatusCode::CREATED, "writer {writer} request {i}: {reply}");
                acks.extend(acks_of(&aggregate, &reply));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for writer in writers {
        acks.extend(writer.await.expect("writer task"));
    }
    let batches = (0..REQUESTS_PER_WRITER).filter(|i| i % 3 == 0).count();
    assert_eq!(acks.len(), WRITERS * (batches * 3 + REQUESTS_PER_WRITER - batches));

    let log = server.read_log(&server.default_key, 17).await;
    assert_eq!(log.len(), acks.len(), "the log holds exactly the acknowledged events");
    assert_log_consistent(&log);
    assert_acks_stored(&log, &acks);

    // Each aggregate's own stream agrees with the log.
    let mut by_aggregate: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for event in &log {
        by_aggregate
            .entry(str_of(&event["aggregateId"]))
            .or_default()
            .push(event);
    }
    assert_eq!(by_aggregate.len(), AGGREGATES);
    for (aggregate, from_log) in by_aggregate {
        let stream = server.read_stream(&server.default_key, aggregate, 10).await;
        let stream: Vec<&Value> = stream.iter().collect();
        assert_eq!(stream, from_log, "stream of {aggregate} differs from the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_winner_per_version_on_a_contended_aggregate() {
    const ROUNDS: u64 = 10;
    let server = Server::start().await;
    // Every round, all writers try to append with the same expectedVersion; the barrier keeps the rounds apart.
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let api = server.api();
        let key = server.default_key.clone();
        let barrier = Arc::clone(&barrier);
        writers.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                let id = new_event_id();
                let body = json!({"eventType": "Claimed", "data": {"writer": writer}, "eventId": id, "expectedVersion": round});
                let reply = api.append(&key, "ledger_1", &body).await;
                if reply.0 == StatusCode::CREATED {
                    assert_eq!(reply.1["version"], round + 1, "{}", reply.1);
                    won.push((round, id));
                } else {
                    assert_error(&reply, 409, "concurrency");
                    assert_eq!(reply.1["expectedVersion"], round, "{}", reply.1);
                    assert_eq!(reply.1["actualVersion"], round + 1, "{}", reply.1);
                }
            }
            won
        }));
    }
    let mut winners = BTreeMap::new();
    for writer in writers {
        for (round, id) in writer.await.expect("writer task") {
            assert!(winners.insert(round, id).is_none(), "two writers won round {round}");
        }
    }
    assert_eq!(winners.len() as u64, ROUNDS, "some round had no winner: {winners:?}");

    let stream = server.read_stream(&server.default_key, "ledger_1", 100).await;
    let stored: Vec<&str> = stream.iter().map(|e| str_of(&e["eventId"])).collect();
    let expected: Vec<&str> = winners.values().map(String::as_str).collect();
    assert_eq!(stored, expected, "the stream holds exactly the winners, in round order");
    assert_log_consistent(&server.read_log(&server.default_key, 100).await);
}
