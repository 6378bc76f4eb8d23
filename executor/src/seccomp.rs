//! Step 9's compiler: the policy crate's deny-list (`policy/seccomp.toml`) becomes classic BPF, once, in the
//! supervisor; the jail's init only installs the result.
//!
//! seccompiler builds one filter per action (a filter has a single "on match" action), all defaulting to allow; the
//! kernel runs every installed filter and the strictest answer wins. In front of them sits a small hand-written
//! filter that refuses the x32 ABI: on x86_64 its syscall numbers carry bit 30 and pass an architecture check as
//! x86_64, so a deny-list keyed by x86_64 numbers would not see them.

use std::collections::BTreeMap;

use hapnd_policy::{ArgOp, ArgWidth, DenyAction, SeccompPolicy};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::init::protocol::BpfInstruction;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the seccomp policy names {0:?}, which is not a syscall of this architecture")]
    UnknownSyscall(String),
    #[error("compile the seccomp policy: {0}")]
    Compile(#[from] seccompiler::BackendError),
    #[error("the seccomp policy: {0}")]
    Policy(#[from] hapnd_policy::PolicyError),
    #[error("the jail supports seccomp on x86_64 only")]
    UnsupportedArch,
}

/// Compiles the sandbox's policy into the filters the init installs, in order.
pub fn compile_sandbox_policy() -> Result<Vec<Vec<BpfInstruction>>, SeccompError> {
    compile(&hapnd_policy::sandbox_seccomp_policy()?)
}

pub fn compile(policy: &SeccompPolicy) -> Result<Vec<Vec<BpfInstruction>>, SeccompError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(SeccompError::UnsupportedArch);
    }
    // action → syscall → rules; an empty rule list matches every call of that syscall.
    let mut by_action: BTreeMap<u32, (SeccompAction, BTreeMap<i64, Vec<SeccompRule>>)> = BTreeMap::new();
    for rule in &policy.rules {
        let action = match rule.action {
            DenyAction::Errno(errno) => SeccompAction::Errno(errno.number()),
            DenyAction::KillProcess => SeccompAction::KillProcess,
        };
        let key = u32::from(action.clone());
        let conditions = rule
            .when
            .iter()
            .map(|c| {
                let width = match c.width {
                    ArgWidth::Dword => SeccompCmpArgLen::Dword,
                    ArgWidth::Qword => SeccompCmpArgLen::Qword,
                };
                let op = match c.op {
                    ArgOp::Eq => SeccompCmpOp::Eq,
                    ArgOp::Ne => SeccompCmpOp::Ne,
                    ArgOp::MaskedEq { mask } => SeccompCmpOp::MaskedEq(mask),
                };
                SeccompCondition::new(c.arg, width, op, c.value)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let syscalls = &mut by_action.entry(key).or_insert_with(|| (action, BTreeMap::new())).1;
        for name in &rule.syscalls {
            let number = syscall_number(name).ok_or_else(|| SeccompError::UnknownSyscall(name.clone()))?;
            let rules = syscalls.entry(number).or_default();
            if !conditions.is_empty() {
                rules.push(SeccompRule::new(conditions.clone())?);
            }
        }
    }
    // Each installation is itself a `seccomp` call, which the policy denies: the filter that denies it goes last.
    let mut groups: Vec<_> = by_action.into_values().collect();
    groups.sort_by_key(|(_, rules)| rules.contains_key(&libc::SYS_seccomp) || rules.contains_key(&libc::SYS_prctl));
    let mut filters = vec![x32_guard()];
    for (action, rules) in groups {
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, TargetArch::x86_64)?;
        let program: BpfProgram = filter.try_into()?;
        filters.push(
            program
                .into_iter()
                .map(|i| BpfInstruction {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect(),
        );
    }
    Ok(filters)
}

/// Refuses every x32 syscall (number ≥ 0x4000_0000) with ENOSYS and kills a process of another architecture.
fn x32_guard() -> Vec<BpfInstruction> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code: u32| u16::try_from(code).expect("BPF opcodes fit 16 bits");
    let load = |offset: u32| BpfInstruction {
        code: op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS),
        jt: 0,
        jf: 0,
        k: offset,
    };
    let ret = |value: u32| BpfInstruction {
        code: op(libc::BPF_RET | libc::BPF_K),
        jt: 0,
        jf: 0,
        k: value,
    };
    vec![
        // seccomp_data.arch
        load(4),
        BpfInstruction {
            code: op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH_X86_64,
        },
        ret(libc::SECCOMP_RET_KILL_PROCESS),
        // seccomp_data.nr
        load(0),
        BpfInstruction {
            code: op(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K),
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ret(libc::SECCOMP_RET_ALLOW),
    ]
}

/// The x86_64 number of a syscall the policy may name.
fn syscall_number(name: &str) -> Option<i64> {
    use libc::*;
    let number = match name {
        "acct" => SYS_acct,
        "add_key" => SYS_add_key,
        "bpf" => SYS_bpf,
        "chroot" => SYS_chroot,
        "clone" => SYS_clone,
        "clone3" => SYS_clone3,
        "delete_module" => SYS_delete_module,
        "fanotify_init" => SYS_fanotify_init,
        "finit_module" => SYS_finit_module,
        "fsconfig" => SYS_fsconfig,
        "fsmount" => SYS_fsmount,
        "fsopen" => SYS_fsopen,
        "fspick" => SYS_fspick,
        "init_module" => SYS_init_module,
        "io_uring_enter" => SYS_io_uring_enter,
        "io_uring_register" => SYS_io_uring_register,
        "io_uring_setup" => SYS_io_uring_setup,
        "ioctl" => SYS_ioctl,
        "ioperm" => SYS_ioperm,
        "iopl" => SYS_iopl,
        "kcmp" => SYS_kcmp,
        "kexec_file_load" => SYS_kexec_file_load,
        "kexec_load" => SYS_kexec_load,
        "keyctl" => SYS_keyctl,
        "lookup_dcookie" => SYS_lookup_dcookie,
        "membarrier" => SYS_membarrier,
        "modify_ldt" => SYS_modify_ldt,
        "mount" => SYS_mount,
        "mount_setattr" => SYS_mount_setattr,
        "move_mount" => SYS_move_mount,
        "name_to_handle_at" => SYS_name_to_handle_at,
        "open_by_handle_at" => SYS_open_by_handle_at,
        "open_tree" => SYS_open_tree,
        "perf_event_open" => SYS_perf_event_open,
        "pidfd_getfd" => SYS_pidfd_getfd,
        "pivot_root" => SYS_pivot_root,
        "prctl" => SYS_prctl,
        "process_madvise" => SYS_process_madvise,
        "process_vm_readv" => SYS_process_vm_readv,
        "process_vm_writev" => SYS_process_vm_writev,
        "ptrace" => SYS_ptrace,
        "quotactl" => SYS_quotactl,
        "reboot" => SYS_reboot,
        "request_key" => SYS_request_key,
        "seccomp" => SYS_seccomp,
        "setns" => SYS_setns,
        "socket" => SYS_socket,
        "socketpair" => SYS_socketpair,
        "swapoff" => SYS_swapoff,
        "swapon" => SYS_swapon,
        "syslog" => SYS_syslog,
        "umount2" => SYS_umount2,
        "unshare" => SYS_unshare,
        "userfaultfd" => SYS_userfaultfd,
        "uselib" => SYS_uselib,
        "vhangup" => SYS_vhangup,
        _ => return None,
    };
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_policy_compiles_with_every_syscall_known() {
        let filters = compile_sandbox_policy().expect("the embedded policy compiles");
        // The x32 guard, then one filter per distinct action (EPERM and ENOSYS at least).
        assert!(filters.len() >= 3, "{} filters", filters.len());
        assert_eq!(filters[0], x32_guard());
        assert!(
            filters
                .iter()
                .all(|f| !f.is_empty() && f.len() <= usize::from(u16::MAX))
        );
    }
}
