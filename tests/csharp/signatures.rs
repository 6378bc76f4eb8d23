//! Signatures on both sides of the pipe: the server refuses to send a tampered artifact, and the worker refuses to
//! load one even when it is sent anyway.

use std::sync::Arc;

use base64::Engine;
use hapnd_executor::{Worker, WorkerConfig};
use hapnd_policy::signing::ArtifactSigner;
use hapnd_server::runtime::Failure;
use hapnd_server::runtime::protocol::LoadRequest;
use serde_json::value::RawValue;

use crate::support::{compile_ok, compiler, dotnet_host, sandbox, signer, workers};

#[tokio::test]
async fn a_tampered_or_foreign_artifact_is_refused_by_the_server_and_by_the_worker() {
    let compiler = compiler().await;
    let text = crate::support::issue_example();
    let artifact = compile_ok(&compiler, "OrderReducer.cs", &text).await.artifact;

    // The server: a changed byte, or another key's signature, does not register.
    let workers = workers();
    let mut tampered = artifact.clone();
    let middle = tampered.dll.len() / 2;
    tampered.dll[middle] ^= 0x01;
    assert_eq!(workers.register(tampered.clone()), Err(Failure::BadSignature));
    let foreign_signer = ArtifactSigner::from_secret_bytes(&[0x33; 32]).expect("key");
    let mut foreign = artifact.clone();
    foreign.signature = foreign_signer.sign(&foreign.dll);
    assert_eq!(workers.register(foreign.clone()), Err(Failure::BadSignature));

    // The worker: sent directly, bypassing the server's check, it still refuses.
    let engine = base64::engine::general_purpose::STANDARD;
    let spec = dotnet_host().worker_spec(&signer().public_key().to_bytes());
    let mut worker = Worker::start(&Arc::clone(&sandbox()), spec, WorkerConfig::default())
        .await
        .expect("a jailed worker starts");
    let load = |dll: &[u8], signature: &[u8]| {
        let request = LoadRequest {
            dll: &engine.encode(dll),
            signature: &engine.encode(signature),
            class_name: &artifact.class_name,
            kind: artifact.kind.as_str(),
        };
        RawValue::from_string(serde_json::to_string(&request).expect("serialize")).expect("JSON")
    };
    for (what, dll, signature) in [
        ("a changed byte", &tampered.dll, &tampered.signature[..]),
        ("another key", &foreign.dll, &foreign.signature[..]),
        ("a cut signature", &artifact.dll, &artifact.signature[..40]),
    ] {
        let answer = worker.call(&load(dll, signature)).await.expect("the worker answers");
        let refused = answer.expect_err(what);
        assert_eq!(refused.kind, "badSignature", "{what}: {refused:?}");
    }
    let apply = RawValue::from_string(r#"{"cmd":"apply","state":null,"event":{}}"#.into()).expect("JSON");
    let refused = worker
        .call(&apply)
        .await
        .expect("answers")
        .expect_err("nothing was loaded");
    assert_eq!(refused.kind, "notLoaded");

    // The control: the untouched artifact loads.
    let loaded = worker
        .call(&load(&artifact.dll, &artifact.signature))
        .await
        .expect("answers");
    let loaded: serde_json::Value = serde_json::from_str(loaded.expect("loads").get()).expect("JSON");
    assert_eq!(loaded["artifact"], artifact.address.as_str());
    worker.shutdown().await;
}
