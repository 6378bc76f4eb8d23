//! The syscall seam: every privileged action of the jail setup is one method here, so the order and arguments of
//! the setup can be tested with [`RecordingSys`] without root, while [`super::real::RealSys`] does it for real.

use std::os::fd::RawFd;
use std::path::Path;

use super::protocol::{BpfInstruction, ExecPlan, Rlimit, RootPlan};

/// Why one step failed, in words for the operator.
pub type SysResult = Result<(), String>;

pub trait Sys {
    /// 1. A new session (no controlling terminal) and no inherited descriptors but `keep`.
    fn new_session(&mut self, keep: &[RawFd]) -> SysResult;
    /// 2. Join the prepared cgroup(s), whose limits are already set.
    fn join_cgroup(&mut self, cgroup_procs: &[&Path]) -> SysResult;
    /// 3. New mount, network, IPC and UTS namespaces (the pid namespace came with the process).
    fn unshare_namespaces(&mut self, flags: i32, hostname: &str) -> SysResult;
    /// 4. The minimal root filesystem, entered with `pivot_root`; the host's tree is detached.
    fn build_root(&mut self, plan: &RootPlan, uid: u32, gid: u32) -> SysResult;
    /// 5. Resource limits.
    fn set_rlimits(&mut self, limits: &[Rlimit]) -> SysResult;
    /// 6. The jail's uid and gid, no supplementary groups, every capability set empty.
    fn drop_privileges(&mut self, uid: u32, gid: u32) -> SysResult;
    /// 7. `no_new_privs`: nothing exec'd later can gain privileges.
    fn set_no_new_privs(&mut self) -> SysResult;
    /// 8. Landlock on the same paths; fails unless every requested restriction is enforced.
    fn restrict_landlock(&mut self, plan: &RootPlan) -> SysResult;
    /// 9. The seccomp filters, in order.
    fn install_seccomp(&mut self, filters: &[Vec<BpfInstruction>]) -> SysResult;
    /// 10. Become the program. Returns only on failure.
    fn exec(&mut self, plan: &ExecPlan) -> SysResult;
}

/// Records each call instead of making it; fails the step named `fail_at`, if any.
#[derive(Debug, Default)]
pub struct RecordingSys {
    pub calls: Vec<String>,
    pub fail_at: Option<&'static str>,
}

impl RecordingSys {
    fn record(&mut self, step: &'static str, detail: String) -> SysResult {
        self.calls.push(format!("{step} {detail}").trim_end().to_owned());
        if self.fail_at == Some(step) {
            Err(format!("{step} failed on purpose"))
        } else {
            Ok(())
        }
    }
}

impl Sys for RecordingSys {
    fn new_session(&mut self, keep: &[RawFd]) -> SysResult {
        self.record("new_session", format!("keep={keep:?}"))
    }
    fn join_cgroup(&mut self, cgroup_procs: &[&Path]) -> SysResult {
        self.record("join_cgroup", format!("{cgroup_procs:?}"))
    }
    fn unshare_namespaces(&mut self, flags: i32, hostname: &str) -> SysResult {
        self.record("unshare_namespaces", format!("flags={flags:#x} hostname={hostname}"))
    }
    fn build_root(&mut self, plan: &RootPlan, uid: u32, gid: u32) -> SysResult {
        self.record(
            "build_root",
            format!(
                "ro={:?} scratch={} owner={uid}:{gid}",
                plan.read_only,
                plan.scratch.display()
            ),
        )
    }
    fn set_rlimits(&mut self, limits: &[Rlimit]) -> SysResult {
        let limits: Vec<String> = limits
            .iter()
            .map(|l| format!("{}={}/{}", l.resource, l.soft, l.hard))
            .collect();
        self.record("set_rlimits", limits.join(","))
    }
    fn drop_privileges(&mut self, uid: u32, gid: u32) -> SysResult {
        self.record("drop_privileges", format!("uid={uid} gid={gid}"))
    }
    fn set_no_new_privs(&mut self) -> SysResult {
        self.record("set_no_new_privs", String::new())
    }
    fn restrict_landlock(&mut self, plan: &RootPlan) -> SysResult {
        self.record(
            "restrict_landlock",
            format!("ro={:?} rw={}", plan.read_only, plan.scratch.display()),
        )
    }
    fn install_seccomp(&mut self, filters: &[Vec<BpfInstruction>]) -> SysResult {
        self.record("install_seccomp", format!("filters={}", filters.len()))
    }
    fn exec(&mut self, plan: &ExecPlan) -> SysResult {
        self.record(
            "exec",
            format!("{} args={:?} env={:?}", plan.program.display(), plan.args, plan.env),
        )
    }
}
