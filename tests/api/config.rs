//! Configuration: the server can be set up by environment variables and by a TOML file instead of options, and
//! its options change what it does (limits, logging).

use crate::harness::*;

/// A temp root with an empty `data` folder inside (so a config file can sit beside it).
fn root_with_data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().expect("create temp dir");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("create data dir");
    (root, data)
}

/// The server really keeps its data in `server`'s data dir: a tenant created there with the tool can write.
async fn assert_uses_its_data_dir(server: &Server) {
    let key = server.create_tenant("probe").await;
    let (status, reply) = server
        .append(&key, "order_1", &json!({"eventType": "E", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
}

#[tokio::test]
async fn environment_variables_configure_data_dir_and_listen() {
    let (root, data) = root_with_data_dir();
    let launch = Launch {
        args: vec!["serve".to_string()],
        envs: vec![
            ("HAPND_DATA_DIR".to_string(), path_arg(&data)),
            ("HAPND_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        ],
    };
    let server = Server::start_launch(root, data.clone(), launch).await;
    let (status, reply) = server
        .append(&server.default_key, "order_1", &json!({"eventType": "E", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert!(
        std::fs::read_dir(&data).expect("read data dir").next().is_some(),
        "nothing written to HAPND_DATA_DIR"
    );
    assert_uses_its_data_dir(&server).await;
}

#[tokio::test]
async fn toml_config_file_configures_the_server() {
    let (root, data) = root_with_data_dir();
    let config = root.path().join("hapnd.toml");
    let toml = format!(
        "data_dir = {}\nlisten = \"127.0.0.1:0\"\ndurability = \"normal\"\nshards = 2\n\
         max_batch_events = 2\nmax_event_bytes = 256\nmax_request_bytes = 4096\nlog_format = \"text\"\n",
        json!(path_arg(&data))
    );
    std::fs::write(&config, toml).expect("write config file");
    let launch = Launch {
        args: vec!["serve".to_string(), "--config".to_string(), path_arg(&config)],
        envs: vec![],
    };
    let server = Server::start_launch(root, data.clone(), launch).await;
    let key = &server.default_key;

    // The limits from the file are the ones in force.
    let event = |bytes: usize| json!({"eventType": "E", "data": {"s": "x".repeat(bytes)}});
    assert_error(
        &server
            .append(key, "order_1", &json!({"events": [event(1), event(1), event(1)]}))
            .await,
        413,
        "batch_too_large",
    );
    assert_error(
        &server.append(key, "order_1", &event(500)).await,
        413,
        "event_too_large",
    );
    let padded = format!("{}{}", event(1), " ".repeat(5000));
    let request = server
        .request(Method::POST, &events_path("order_1"))
        .bearer_auth(key)
        .header("Content-Type", "application/json");
    assert_error(&server.send(request.body(padded)).await, 413, "request_too_large");
    let (status, reply) = server
        .append(key, "order_1", &json!({"events": [event(100), event(100)]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");

    assert!(
        std::fs::read_dir(&data).expect("read data dir").next().is_some(),
        "nothing written to data_dir"
    );
    assert_uses_its_data_dir(&server).await;
}

#[tokio::test]
async fn serve_options_are_accepted() {
    let server = Server::start_with(&["--durability", "full", "--shards", "2", "--log-format", "text"]).await;
    let (status, reply) = server
        .append(&server.default_key, "order_1", &json!({"eventType": "E", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(server.read_log(&server.default_key, 10).await.len(), 1);
}

#[tokio::test]
async fn json_log_format_writes_json_lines_to_stderr() {
    let mut server = Server::start_with(&["--log-format", "json"]).await;
    let (status, reply) = server
        .append(&server.default_key, "order_1", &json!({"eventType": "E", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let status = server.stop_sigterm().await;
    assert_eq!(status.code(), Some(0));

    let stderr = server.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines at all");
    for line in lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok_and(|v| v.is_object()), "not a JSON log line: {line}");
    }
    // Logs go to stderr, not stdout.
    let stdout = server.stdout();
    assert!(
        stdout.lines().all(|l| serde_json::from_str::<Value>(l).is_err()),
        "a log line on stdout:\n{stdout}"
    );
}
