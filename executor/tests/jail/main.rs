//! The real jail, tested as root: probe programs run inside it and report from inside whether each forbidden action
//! was refused (exit 0) or escaped (exit 1); see `tests/probes/probe.c`.

mod support;

use hapnd_executor::Outcome;
use support::{probe_spec, run, stdout};

#[tokio::test]
async fn the_harmless_probe_does_its_allowed_work() {
    let output = run(probe_spec(&["harmless", "/tmp"])).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{} / {}", stdout(&output), String::from_utf8_lossy(&output.stderr));
}
