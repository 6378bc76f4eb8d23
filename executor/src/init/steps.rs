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
            format!("init protocol {} but the supervisor speaks {}", INIT_PROTOCOL_VERSION, spec.version),
        );
    }
    if spec.uid == 0 || spec.gid == 0 {
        return fail("handshake", "the jail never runs as root".into());
    }
    let cgroup_procs: Vec<&Path> = spec.cgroup_procs.iter().map(|p| p.as_path()).collect();
    let mut run = || -> Result<(), InitFailure> {
        step("1 new session", sys.new_session(&[0, 1, 2, CONTROL_FD]))?;
        step("2 cgroup", sys.join_cgroup(&cgroup_procs))?;
        step("3 namespaces", sys.unshare_namespaces(spec.unshare_flags, &spec.hostname))?;
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
