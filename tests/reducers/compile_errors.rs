//! Uploads that do not compile end `failed`, with the compiler's diagnostics pointing at the file (its path inside an
//! archive), line and column; code the security gate refuses and projection code fail the same way.

use crate::archives::{Entry, tar_gz};
use crate::support::*;

/// The 1-based line and column of the first occurrence of `needle` in `text`.
fn location(text: &str, needle: &str) -> (u64, u64) {
    text.lines()
        .enumerate()
        .find_map(|(index, line)| {
            let column = line.find(needle)?;
            Some((index as u64 + 1, column as u64 + 1))
        })
        .unwrap_or_else(|| panic!("{needle:?} is not in the fixture"))
}

/// The diagnostic with this code, or a failure listing them all.
#[track_caller]
fn diagnostic<'a>(failed: &'a Value, code: &str) -> &'a Value {
    failed["diagnostics"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["code"] == code))
        .unwrap_or_else(|| panic!("no {code} diagnostic in {failed}"))
}

#[tokio::test]
async fn compile_errors_come_back_with_file_line_and_column() {
    let server = start().await;
    let key = &server.default_key;
    let source = code("type_error.cs");
    let (line, column) = location(&source, "\"one\";");

    let upload = accepted(&upload_json(&server, key, &json!({"files": {"CountReducer.cs": source}})).await);
    let failed = wait_failed(&server, key, &upload).await;
    let error = diagnostic(&failed, "CS0029");
    assert_keys(error, &["severity", "code", "message", "file", "line", "column"]);
    assert_eq!(error["severity"], "error", "{error}");
    assert_eq!(error["file"], "CountReducer.cs", "{error}");
    assert_eq!(
        (u64_of(&error["line"]), u64_of(&error["column"])),
        (line, column),
        "{error}"
    );
    assert!(str_of(&error["message"]).contains("string"), "{error}");

    // In an archive the file is named by its path in the project folder.
    let folder = [
        Entry::Dir("src/"),
        Entry::File("src/CountReducer.cs", source.as_bytes()),
    ];
    let reply = upload_bytes(&server, key, "", "application/gzip", tar_gz(&folder)).await;
    let failed = wait_failed(&server, key, &accepted(&reply)).await;
    let error = diagnostic(&failed, "CS0029");
    assert_eq!(error["file"], "src/CountReducer.cs", "{error}");
    assert_eq!(
        (u64_of(&error["line"]), u64_of(&error["column"])),
        (line, column),
        "{error}"
    );

    // A failed upload binds nothing, even when it names a type.
    let body = json!({"files": {"CountReducer.cs": code("type_error.cs")}, "aggregateType": "count"});
    let failed = wait_failed(&server, key, &accepted(&upload_json(&server, key, &body).await)).await;
    diagnostic(&failed, "CS0029");
    assert_error(&get_binding(&server, key, "count").await, 404, "not_bound");
    let (status, listed) = server.get(key, "/reducers").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed, json!({"reducers": []}));
}

#[tokio::test]
async fn projection_code_and_refused_code_fail_with_their_diagnostics() {
    let server = start().await;
    let key = &server.default_key;

    // A projection belongs on /projections.
    let projection = fixture("legit/orders_by_customer.cs");
    let body = json!({"files": {"OrdersByCustomer.cs": projection}});
    let failed = wait_failed(&server, key, &accepted(&upload_json(&server, key, &body).await)).await;
    let wrong_kind = diagnostic(&failed, "HAPND_WRONG_KIND");
    assert!(
        str_of(&wrong_kind["message"]).contains("/projections"),
        "the diagnostic says where projections go: {wrong_kind}"
    );

    // The allowlist gate runs on this path too: a file read is refused where it is written.
    let hostile = fixture("hostile/file_read.cs");
    let body = json!({"files": {"FileRead.cs": hostile}});
    let failed = wait_failed(&server, key, &accepted(&upload_json(&server, key, &body).await)).await;
    let refusal = diagnostic(&failed, "HAPND001");
    assert_eq!(refusal["file"], "FileRead.cs", "{refusal}");
    assert!(str_of(&refusal["message"]).contains("System.IO.File"), "{refusal}");
    let line = u64_of(&refusal["line"]);
    assert!(
        hostile
            .lines()
            .nth(usize::try_from(line.checked_sub(1).expect("lines are 1-based")).expect("a small line number"))
            .is_some_and(|l| l.contains("File.")),
        "line {line} is where the file is read: {refusal}"
    );
}
