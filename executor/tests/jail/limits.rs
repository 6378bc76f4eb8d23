//! The jail's limits end misbehaving programs, and the outcome says which limit did.

use std::time::Duration;

use hapnd_executor::Outcome;

use crate::support::{probe_spec, run, stdout};

#[tokio::test]
async fn an_infinite_loop_is_killed_at_the_deadline() {
    let spec = probe_spec(&["spin"]);
    let deadline = spec.limits.request_timeout;
    assert_eq!(deadline, Duration::from_secs(5), "the default deadline");
    let output = run(spec).await;
    assert_eq!(output.ended.outcome, Outcome::Timeout);
    let late = output.ended.elapsed.saturating_sub(deadline);
    eprintln!(
        "killed {late:?} after the 5 s deadline (elapsed {:?})",
        output.ended.elapsed
    );
    assert!(
        output.ended.elapsed >= deadline,
        "not before the deadline: {:?}",
        output.ended.elapsed
    );
    // Measured: about 20 ms after the deadline in the full suite; the rest of the margin is for a noisy 2-core VM.
    assert!(late < Duration::from_secs(1), "killed {late:?} after the deadline");
}

#[tokio::test]
async fn a_memory_hog_is_reported_out_of_memory() {
    let mut spec = probe_spec(&["memory-hog"]);
    spec.limits.memory_bytes = 64 * 1024 * 1024;
    let output = run(spec).await;
    assert_eq!(output.ended.outcome, Outcome::OutOfMemory, "{}", stdout(&output));
}

#[tokio::test]
async fn a_fork_bomb_is_stopped_by_the_pids_limit() {
    let mut spec = probe_spec(&["fork-bomb"]);
    spec.limits.pids = 32;
    let output = run(spec).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));
    assert!(output.ended.pids_limit_hit, "the pids controller refused forks");
    let line = stdout(&output);
    let forks: u32 = line
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("fork count in {line:?}"));
    assert!(forks < 32, "at most the pids limit: {line}");
}

#[tokio::test]
async fn scratch_cannot_be_filled_past_its_size() {
    let mut spec = probe_spec(&["fill-scratch", "/tmp", "8388608"]);
    spec.scratch.size_bytes = 8 * 1024 * 1024;
    let output = run(spec).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("refused"), "{}", stdout(&output));
}

#[tokio::test]
async fn output_beyond_the_limit_ends_the_program() {
    let mut spec = probe_spec(&["echo"]);
    spec.limits.output_bytes = 1024;
    let output = hapnd_executor_run_with_input(spec, vec![b'x'; 64 * 1024]).await;
    assert_eq!(output.ended.outcome, Outcome::OutputLimit);
    assert_eq!(output.stdout.len(), 1024);
}

async fn hapnd_executor_run_with_input(spec: hapnd_executor::SandboxSpec, input: Vec<u8>) -> hapnd_executor::RunOutput {
    crate::support::sandbox()
        .run(spec, input)
        .await
        .expect("the jail starts")
}
