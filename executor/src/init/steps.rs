//! The jail setup, in the order of `executor/JAIL.md`: one named call per step, nothing else. Each step assumes the
//! ones before it; the order is what makes the jail hold (see the doc for why each step sits where it does).

use std::path::Path;

use super::protocol::{CONTROL_FD, INIT_PROTOCOL_VERSION, InitFailure, InitSpec};
use super::sys::Sys;

/// Runs steps 1 to 10. Returns only when a step failed: after step 10 this process is the jailed program.
pub fn setup(spec: &InitSpec, sys: &mut impl Sys) -> InitFailure {
    let fail = |step: &str, message: String| InitFailure {
        step: step.to_owned(),
        message,
    };
    if spec.version != INIT_PROTOCOL_VERSION {
        return fail(
            "handshake",
            format!(
                "init protocol {} but the supervisor speaks {}",
                INIT_PROTOCOL_VERSION, spec.version
            ),
        );
    }
    if spec.uid == 0 || spec.gid == 0 {
        return fail("handshake", "the jail never runs as root".into());
    }
    let cgroup_procs: Vec<&Path> = spec.cgroup_procs.iter().map(|p| p.as_path()).collect();
    let mut run = || -> Result<(), InitFailure> {
        step("1 new session", sys.new_session(&[0, 1, 2, CONTROL_FD]))?;
        step("2 cgroup", sys.join_cgroup(&cgroup_procs))?;
        step(
            "3 namespaces",
            sys.unshare_namespaces(spec.unshare_flags, &spec.hostname),
        )?;
        step("4 root filesystem", sys.build_root(&spec.root, spec.uid, spec.gid))?;
        step("5 rlimits", sys.set_rlimits(&spec.rlimits))?;
        step("6 uid, gid and capabilities", sys.drop_privileges(spec.uid, spec.gid))?;
        step("7 no_new_privs", sys.set_no_new_privs())?;
        step("8 landlock", sys.restrict_landlock(&spec.root))?;
        step("9 seccomp", sys.install_seccomp(&spec.seccomp))?;
        step("10 exec", sys.exec(&spec.exec))?;
        Err(fail("10 exec", "exec returned".into()))
    };
    match run() {
        Ok(()) => fail("10 exec", "exec returned".into()),
        Err(failure) => failure,
    }
}

fn step(name: &str, result: Result<(), String>) -> Result<(), InitFailure> {
    result.map_err(|message| InitFailure {
        step: name.to_owned(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::init::protocol::{BpfInstruction, ExecPlan, Rlimit, RootPlan};
    use crate::init::sys::RecordingSys;
    use crate::jail_user::{DEFAULT_JAIL_GID, DEFAULT_JAIL_UID};

    fn spec() -> InitSpec {
        InitSpec {
            version: INIT_PROTOCOL_VERSION,
            cgroup_procs: vec![PathBuf::from("/sys/fs/cgroup/memory/hapnd/jail-1/cgroup.procs")],
            unshare_flags: 0x7e02_0000,
            hostname: "hapnd-jail".into(),
            root: RootPlan {
                read_only: vec![PathBuf::from("/opt/worker")],
                scratch: PathBuf::from("/tmp"),
                scratch_bytes: 1 << 20,
            },
            rlimits: vec![Rlimit {
                resource: 4,
                soft: 0,
                hard: 0,
            }],
            uid: DEFAULT_JAIL_UID,
            gid: DEFAULT_JAIL_GID,
            seccomp: vec![vec![BpfInstruction {
                code: 6,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }]],
            exec: ExecPlan {
                program: PathBuf::from("/opt/worker/run"),
                argv0: None,
                args: vec!["--serve".into()],
                env: vec![("LANG".into(), "C".into())],
                cwd: PathBuf::from("/tmp"),
            },
        }
    }

    fn step_names(sys: &RecordingSys) -> Vec<&str> {
        sys.calls.iter().map(|c| c.split(' ').next().unwrap_or("")).collect()
    }

    #[test]
    fn the_steps_run_in_the_documented_order_with_the_specs_arguments() {
        let mut sys = RecordingSys::default();
        let failure = setup(&spec(), &mut sys);
        assert_eq!(
            step_names(&sys),
            [
                "new_session",
                "join_cgroup",
                "unshare_namespaces",
                "build_root",
                "set_rlimits",
                "drop_privileges",
                "set_no_new_privs",
                "restrict_landlock",
                "install_seccomp",
                "exec",
            ]
        );
        assert_eq!(sys.calls[0], "new_session keep=[0, 1, 2, 3]");
        assert_eq!(sys.calls[2], "unshare_namespaces flags=0x7e020000 hostname=hapnd-jail");
        assert_eq!(sys.calls[5], "drop_privileges uid=61000 gid=61000");
        assert_eq!(
            sys.calls[9],
            r#"exec /opt/worker/run args=["--serve"] env=[("LANG", "C")]"#
        );
        // The recording exec "returns", which a real one never does.
        assert_eq!(failure.step, "10 exec");
    }

    #[test]
    fn a_failing_step_stops_the_setup_and_the_program_never_starts() {
        for (fail_at, step) in [
            ("join_cgroup", "2 cgroup"),
            ("build_root", "4 root filesystem"),
            ("drop_privileges", "6 uid, gid and capabilities"),
            ("restrict_landlock", "8 landlock"),
            ("install_seccomp", "9 seccomp"),
        ] {
            let mut sys = RecordingSys {
                fail_at: Some(fail_at),
                ..RecordingSys::default()
            };
            let failure = setup(&spec(), &mut sys);
            assert_eq!(failure.step, step);
            assert_eq!(step_names(&sys).last(), Some(&fail_at), "nothing runs after {fail_at}");
            assert!(!step_names(&sys).contains(&"exec"));
        }
    }

    #[test]
    fn a_foreign_protocol_or_a_root_jail_user_is_refused_before_any_step() {
        let mut sys = RecordingSys::default();
        let mut other_version = spec();
        other_version.version += 1;
        assert_eq!(setup(&other_version, &mut sys).step, "handshake");
        let mut root = spec();
        root.uid = 0;
        assert_eq!(setup(&root, &mut sys).step, "handshake");
        assert!(sys.calls.is_empty());
    }
}
