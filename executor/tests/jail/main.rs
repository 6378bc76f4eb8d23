//! The real jail, tested as root: probe programs run inside it and report from inside whether each forbidden action
//! was refused (exit 0) or escaped (exit 1); see `tests/probes/probe.c`. The harmless probe is the negative control:
//! a jail that refused everything, allowed work included, would fail it.

mod dotnet;
mod escapes;
mod lifecycle;
mod limits;
mod support;
mod workers;

use hapnd_executor::{DEFAULT_JAIL_GID, DEFAULT_JAIL_UID, Outcome};
use support::{probe_spec, run, stdout};

#[tokio::test]
async fn the_harmless_probe_does_its_allowed_work() {
    let output = run(probe_spec(&["harmless", "/tmp"])).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "harmless: ok");
}

#[tokio::test]
async fn the_program_runs_as_a_non_root_user_without_capabilities() {
    let output = run(probe_spec(&["identity"])).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));
    let (uid, gid) = (DEFAULT_JAIL_UID, DEFAULT_JAIL_GID);
    assert_eq!(
        stdout(&output),
        format!("identity: uid={uid}/{uid}/{uid} gid={gid}/{gid}/{gid} groups=0")
    );

    let output = run(probe_spec(&["caps"])).await;
    assert_eq!(output.ended.outcome, Outcome::Exited(0), "{}", stdout(&output));
    let line = stdout(&output);
    for set in ["inh", "prm", "eff", "bnd", "amb"] {
        assert!(
            line.contains(&format!("{set}=0000000000000000")),
            "{set} is not empty: {line}"
        );
    }
    assert!(line.contains("nnp=1"), "no_new_privs is set: {line}");
    assert!(line.contains("seccomp=2"), "a seccomp filter is installed: {line}");
}

#[tokio::test]
async fn the_environment_holds_exactly_the_given_variables() {
    let mut spec = probe_spec(&["env"]);
    spec.env = vec![("LANG".into(), "C.UTF-8".into()), ("HAPND_PROBE".into(), "1".into())];
    let output = run(spec.clone()).await;
    assert_eq!(stdout(&output), "env: HAPND_PROBE=1,LANG=C.UTF-8");

    // The jail's pid 1 is the program itself: nothing of the supervisor's environment is left anywhere.
    spec.args = vec!["environ-of-1".into()];
    let output = run(spec).await;
    assert_eq!(stdout(&output), "environ-of-1: LANG=C.UTF-8,HAPND_PROBE=1");
}
