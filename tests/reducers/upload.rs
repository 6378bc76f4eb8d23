//! Uploading reducers: every documented form compiles (JSON with `files`, a bare map, a `.tar.gz` and a `.zip` of a
//! project folder whose `bin/`, `obj/`, `.csproj` and other files are ignored), the same code gets the same
//! `reducerId`, `aggregateType` works in the body and in the query, and malformed uploads get the documented 4xx.

use crate::archives::{Entry, ZipMethod, tar_gz, zip};
use crate::support::*;

/// A project folder as `dotnet new` and a build leave it: the reducer under `src/`, a project file, build output
/// that is not C# at all (were it compiled, the upload would fail), and a README.
fn project_folder(reducer: &str) -> Vec<Entry<'_>> {
    vec![
        Entry::Dir("src/"),
        Entry::File("src/OrderReducer.cs", reducer.as_bytes()),
        Entry::File(
            "Orders.csproj",
            b"<Project Sdk=\"Microsoft.NET.Sdk\"><PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup></Project>\n",
        ),
        Entry::File("README.md", b"# Orders\n"),
        Entry::Dir("bin/"),
        Entry::Dir("bin/Debug/"),
        Entry::File("bin/Debug/Leftover.cs", b"this is not C# { at all\n"),
        Entry::Dir("obj/"),
        Entry::File("obj/Generated.cs", b"neither is this }\n"),
    ]
}

#[tokio::test]
async fn every_upload_form_compiles_and_the_same_code_gets_the_same_id() {
    let server = start().await;
    let key = &server.default_key;
    let source = order_reducer();

    // JSON with `files`, then the same file as a bare map: one reducer.
    let wrapped = accepted(&upload_json(&server, key, &json!({"files": {"OrderReducer.cs": source}})).await);
    let wrapped = wait_ready(&server, key, &wrapped).await;
    assert_eq!(wrapped["className"], "OrderReducer", "{wrapped}");
    assert_eq!(wrapped["stateType"], "OrderState", "{wrapped}");
    assert_eq!(wrapped["aggregateType"], Value::Null, "{wrapped}");
    let bare = accepted(&upload_json(&server, key, &json!({"OrderReducer.cs": source})).await);
    let bare = wait_ready(&server, key, &bare).await;
    assert_eq!(
        bare["reducerId"], wrapped["reducerId"],
        "same code, same id: {bare} vs {wrapped}"
    );
    assert_ne!(bare["uploadId"], wrapped["uploadId"], "each upload has its own id");

    // The project folder as .tar.gz, with the type in the query: ready, and bound.
    let folder = project_folder(&source);
    let tarred = upload_bytes(
        &server,
        key,
        "?aggregateType=order",
        "application/gzip",
        tar_gz(&folder),
    )
    .await;
    let tarred = wait_ready(&server, key, &accepted(&tarred)).await;
    assert_eq!(tarred["className"], "OrderReducer", "{tarred}");
    assert_eq!(tarred["aggregateType"], "order", "{tarred}");
    let reducer_id = str_of(&tarred["reducerId"]);
    let (status, binding) = get_binding(&server, key, "order").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an upload with aggregateType binds once ready: {binding}"
    );
    assert_binding(&binding, "order", reducer_id);

    // The same folder as .zip, stored and deflated: the same files, so the same reducer.
    for method in [ZipMethod::Stored, ZipMethod::Deflated] {
        let zipped = upload_bytes(&server, key, "", "application/zip", zip(&folder, method)).await;
        let zipped = wait_ready(&server, key, &accepted(&zipped)).await;
        assert_eq!(
            zipped["reducerId"], reducer_id,
            "{method:?} zip of the tarred files: {zipped}"
        );
        assert_eq!(zipped["aggregateType"], Value::Null, "{zipped}");
    }

    // `aggregateType` in the query works with the JSON form too.
    let queried = upload_bytes(
        &server,
        key,
        "?aggregateType=cart",
        "application/json",
        serde_json::to_vec(&json!({"files": {"OrderReducer.cs": source}})).expect("serialize"),
    )
    .await;
    let queried = wait_ready(&server, key, &accepted(&queried)).await;
    assert_eq!(queried["aggregateType"], "cart", "{queried}");
    assert_eq!(queried["reducerId"], wrapped["reducerId"], "{queried}");
    let (status, binding) = get_binding(&server, key, "cart").await;
    assert_eq!(status, StatusCode::OK, "{binding}");
    assert_binding(&binding, "cart", str_of(&wrapped["reducerId"]));

    // The tenant's reducers, each listed once however often it was uploaded.
    let (status, listed) = server.get(key, "/reducers").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let reducers = listed["reducers"]
        .as_array()
        .unwrap_or_else(|| panic!("no reducers list: {listed}"));
    let mut ids: Vec<&str> = reducers.iter().map(|r| str_of(&r["reducerId"])).collect();
    ids.sort_unstable();
    let mut expected = vec![str_of(&wrapped["reducerId"]), reducer_id];
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(ids, expected, "{listed}");
    for reducer in reducers {
        assert_keys(reducer, &["reducerId", "className", "stateType", "createdAt"]);
        assert_eq!(reducer["className"], "OrderReducer", "{reducer}");
        assert_eq!(reducer["stateType"], "OrderState", "{reducer}");
        assert_timestamp(str_of(&reducer["createdAt"]));
    }
}

#[tokio::test]
async fn malformed_uploads_get_the_documented_errors() {
    let server = start().await;
    let key = &server.default_key;
    let source = order_reducer();
    let api: &Api = &server;
    let post = move |body: Value| async move { upload_json(api, key, &body).await };

    // Shape of the file map.
    assert_error(&post(json!({"files": {}})).await, 400, "invalid_upload");
    assert_error(&post(json!({})).await, 400, "invalid_upload");
    assert_error(
        &post(json!({"files": {"README.md": "# no code"}})).await,
        400,
        "invalid_upload",
    );
    for name in [
        "../Escape.cs",
        "/etc/Absolute.cs",
        "src//Empty.cs",
        "has space.cs",
        "src/../Up.cs",
    ] {
        let reply = post(json!({"files": {name: source}})).await;
        assert_error(&reply, 400, "invalid_upload");
    }
    assert_error(&post(json!({"files": {"A.cs": 5}})).await, 400, "invalid_json");
    let truncated = br#"{"files": {"OrderReducer.cs": "using"#.to_vec();
    assert_error(
        &upload_bytes(&server, key, "", "application/json", truncated).await,
        400,
        "invalid_json",
    );

    // Sizes.
    let huge = format!("{source}\n// {}\n", "x".repeat(600 * 1024));
    assert_error(
        &post(json!({"files": {"Huge.cs": huge}})).await,
        413,
        "upload_too_large",
    );
    let many: serde_json::Map<String, Value> = (0..65)
        .map(|i| (format!("File{i}.cs"), json!(format!("public record R{i}(int N);"))))
        .collect();
    assert_error(&post(json!({"files": many})).await, 413, "upload_too_large");

    // Content types and archives.
    assert_error(
        &upload_bytes(&server, key, "", "text/plain", source.clone().into_bytes()).await,
        415,
        "unsupported_media_type",
    );
    for content_type in ["application/gzip", "application/zip"] {
        let garbage = b"this is not an archive".to_vec();
        assert_error(
            &upload_bytes(&server, key, "", content_type, garbage).await,
            400,
            "invalid_archive",
        );
    }
    let no_code = [Entry::File("README.md", b"# nothing to compile\n")];
    assert_error(
        &upload_bytes(&server, key, "", "application/gzip", tar_gz(&no_code)).await,
        400,
        "invalid_upload",
    );
    assert_error(
        &upload_bytes(&server, key, "", "application/zip", zip(&no_code, ZipMethod::Stored)).await,
        400,
        "invalid_upload",
    );

    // Unknown uploads, and no key.
    let unknown = format!("/reducers/{}/status", new_event_id());
    assert_error(&server.get(key, &unknown).await, 404, "not_found");
    let anonymous = server
        .send(
            server
                .request(Method::POST, "/reducers")
                .json(&json!({"files": {"A.cs": source}})),
        )
        .await;
    assert_error(&anonymous, 401, "unauthorized");

    // None of it left a reducer behind.
    let (status, listed) = server.get(key, "/reducers").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed, json!({"reducers": []}));
}

#[tokio::test]
async fn without_the_csharp_runtime_uploads_are_refused_and_appends_still_work() {
    // No `--dotnet-host`, and no build next to the binary: the server runs without code.
    let server = Server::start().await;
    let key = &server.default_key;
    let reply = upload_json(&server, key, &json!({"files": {"OrderReducer.cs": order_reducer()}})).await;
    assert_error(&reply, 503, "code_disabled");
    let stored = append_ok(&server, key, "order_1", &order_placed("c1")).await;
    assert_keys(&stored, &["eventId", "version", "globalPosition", "aggregateType"]);
}
