//! Operations endpoints: the probes answer without a key, and `/metrics` exposes the documented metrics.

use crate::harness::*;

#[tokio::test]
async fn probes_answer_without_a_key() {
    let server = Server::start().await;
    for path in ["/healthz", "/readyz"] {
        let (status, text) = server.get_text(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    }
    let (status, _) = server.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_name_the_documented_series() {
    let server = Server::start().await;
    let key = &server.default_key;
    for n in 0..3 {
        let (status, reply) = server
            .append(key, "order_1", &json!({"eventType": "E", "data": {"n": n}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
    }
    let batch: Vec<Value> = (0..4).map(|n| json!({"eventType": "E", "data": {"n": n}})).collect();
    let (status, reply) = server.append(key, "order_2", &json!({"events": batch})).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    let series = [
        "hapnd_append_requests_total",
        "hapnd_appended_events_total",
        "hapnd_append_duration_seconds_bucket",
        "hapnd_append_duration_seconds_count",
        "hapnd_group_commit_requests_bucket",
        "hapnd_group_commit_events_bucket",
        "hapnd_group_commit_duration_seconds",
        "hapnd_shard_queue_depth{",
    ];
    for name in series {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "/metrics has no {name} sample:\n{metrics}"
        );
    }
    for histogram in [
        "hapnd_append_duration_seconds",
        "hapnd_group_commit_requests",
        "hapnd_group_commit_events",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram} is not a histogram:\n{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hapnd_shard_queue_depth{") && l.contains("shard=")),
        "{metrics}"
    );

    // The counters count what happened: 4 requests, 7 events.
    assert_eq!(
        sample_sum(&metrics, "hapnd_appended_events_total"),
        Some(7.0),
        "{metrics}"
    );
    assert!(
        sample_sum(&metrics, "hapnd_append_requests_total").is_some_and(|n| n >= 4.0),
        "{metrics}"
    );
    assert!(
        sample_sum(&metrics, "hapnd_append_duration_seconds_count").is_some_and(|n| n >= 4.0),
        "{metrics}"
    );
    let committed = sample_sum(&metrics, "hapnd_group_commit_events_sum");
    assert_eq!(
        committed,
        Some(7.0),
        "every appended event went through a group commit:\n{metrics}"
    );
}
