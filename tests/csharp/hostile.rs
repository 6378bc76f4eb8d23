//! Every program in `tests/hostile/` is refused by the jailed compiler, with the diagnostic its first line names:
//! `// expect: CODE TEXT` (a diagnostic with that code whose message contains TEXT).

use crate::support::{compiler, fixtures, upload};

#[tokio::test]
async fn every_hostile_program_is_refused_with_the_expected_diagnostic() {
    let compiler = compiler().await;
    let programs = fixtures("hostile");
    assert!(
        programs.len() >= 40,
        "the issue asks for at least 40 attacks, found {}",
        programs.len()
    );
    let mut wrong = Vec::new();
    for (name, text) in &programs {
        let expectation = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{name}: the first line must be `// expect: CODE TEXT`"));
        let (code, needle) = expectation.split_once(' ').unwrap_or((expectation, ""));
        match compiler.compile(&upload(name, text)).await {
            Ok(Ok(_)) => wrong.push(format!("{name}: compiled, but it must be refused ({expectation})")),
            Ok(Err(rejected)) => {
                let found = rejected
                    .diagnostics
                    .iter()
                    .any(|d| d.severity == "error" && d.code == code && d.message.contains(needle));
                if !found {
                    let got: Vec<String> = rejected
                        .diagnostics
                        .iter()
                        .map(|d| format!("    {} {}", d.code, d.message))
                        .collect();
                    wrong.push(format!("{name}: expected {expectation}, got:\n{}", got.join("\n")));
                }
            }
            Err(error) => wrong.push(format!("{name}: the compiler failed: {error}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        programs.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn refusals_point_at_the_file_line_and_column() {
    let compiler = compiler().await;
    let text = "public record S(int N);\npublic class R : IReducer<S> {\n    public S Apply(S? s, Event e) =>\n        new S(System.IO.File.ReadAllText(\"/etc/shadow\").Length);\n}\n";
    let rejected = compiler
        .compile(&upload("Reader.cs", text))
        .await
        .expect("the compiler answers")
        .expect_err("a file read is refused");
    let refusal = rejected
        .diagnostics
        .iter()
        .find(|d| d.code == "HAPND001")
        .expect("an allowlist refusal");
    assert_eq!(refusal.file.as_deref(), Some("Reader.cs"));
    assert_eq!(refusal.line, Some(4));
    assert!(refusal.column.is_some_and(|c| c > 1), "{refusal:?}");
    assert!(
        refusal.message.contains("System.IO.File") && refusal.message.contains("no files"),
        "the message names the symbol and says what to do instead: {}",
        refusal.message
    );
}

#[tokio::test]
async fn an_upload_without_exactly_one_reducer_or_projection_is_refused() {
    let compiler = compiler().await;
    for (text, needle) in [
        ("public record S(int N);", "no reducer or projection"),
        (
            "public record S(int N);\npublic class A : IReducer<S> { public S Apply(S? s, Event e) => new S(1); }\npublic class B : IReducer<S> { public S Apply(S? s, Event e) => new S(2); }",
            "more than one",
        ),
    ] {
        let rejected = compiler
            .compile(&upload("Upload.cs", text))
            .await
            .expect("the compiler answers")
            .expect_err("refused");
        assert!(
            rejected
                .diagnostics
                .iter()
                .any(|d| d.code == "HAPND021" && d.message.contains(needle)),
            "{needle}: {:?}",
            rejected.diagnostics
        );
    }
}
