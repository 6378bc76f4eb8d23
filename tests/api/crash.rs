//! Crash safety: with writers appending continuously, `kill -9` loses no acknowledged event. After a restart every
//! acknowledged event is at exactly the position, aggregate and version it was acknowledged with, and positions and
//! versions are still gapless; the recovered store then takes new writes and survives a second crash.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_loses_no_acknowledged_event() {
    let mut server = Server::start().await;
    let key = server.default_key.clone();
    let mut all_acks = Vec::new();

    for (round, target) in [(1, 300), (2, 150)] {
        let writers = Writers::spawn(&server.api(), &key, 6);
        writers.wait_for_acks(target).await;
        server.kill9();
        let (acks, refusals) = writers.join().await;
        eprintln!(
            "round {round}: {} events acknowledged, {} requests refused",
            acks.len(),
            refusals.len()
        );
        assert!(
            refusals.is_empty(),
            "round {round}: a running server refused writes: {refusals:?}"
        );
        assert!(acks.len() >= target, "round {round}");
        all_acks.extend(acks);

        server.restart().await;
        let log = server.read_log(&key, 250).await;
        assert!(
            log.len() >= all_acks.len(),
            "round {round}: {} acknowledged but {} stored",
            all_acks.len(),
            log.len()
        );
        assert_log_consistent(&log);
        assert_acks_stored(&log, &all_acks);

        // The recovered store continues right after what it holds.
        let (status, reply) = server
            .append(
                &key,
                "after-crash",
                &json!({"eventType": "Recovered", "data": {"round": round}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        assert_eq!(reply["globalPosition"], log.len() + 1, "{reply}");
        assert_eq!(reply["version"], round, "{reply}");
        all_acks.extend(acks_of("after-crash", &reply));
    }
}
