//! Tests of the seccomp policy: the embedded file keeps its required denials, and the parser rejects malformed input.

use super::*;

const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWCGROUP: u64 = 0x0200_0000;
const CLONE_NEWUTS: u64 = 0x0400_0000;
const CLONE_NEWIPC: u64 = 0x0800_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_NEWNET: u64 = 0x4000_0000;
const CLONE_NEWTIME: u64 = 0x0000_0080;
const NAMESPACE_FLAGS: [u64; 8] = [
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
    CLONE_NEWTIME,
];

/// glibc's pthread_create: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID.
const THREAD_CLONE_FLAGS: u64 = 0x003d_0f00;
/// glibc's fork: CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD.
const FORK_CLONE_FLAGS: u64 = 0x0120_0011;

const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;
const PR_SET_SECCOMP: u64 = 22;
const AF_UNIX: u64 = 1;

/// Denied on every call with EPERM (the list in the policy's issue).
const DENIED_WITH_EPERM: &[&str] = &[
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "membarrier",
    "seccomp",
    "name_to_handle_at",
    "open_by_handle_at",
    "iopl",
    "ioperm",
    "syslog",
    "acct",
    "quotactl",
    "lookup_dcookie",
    "vhangup",
    "uselib",
    "fanotify_init",
    "kcmp",
];

fn policy() -> SeccompPolicy {
    sandbox_seccomp_policy().expect("the embedded seccomp policy parses")
}

fn args(first: u64, second: u64) -> [u64; 6] {
    [first, second, 0, 0, 0, 0]
}

fn action_for(policy: &SeccompPolicy, syscall: &str, args: [u64; 6]) -> Option<DenyAction> {
    policy.denying_rule(syscall, &args).map(|rule| rule.action)
}

const EPERM: Option<DenyAction> = Some(DenyAction::Errno(Errno::Eperm));

#[test]
fn embedded_policy_parses_every_entry() {
    let policy = policy();
    let entries = SANDBOX_SECCOMP_TOML
        .lines()
        .filter(|line| line.trim() == "[[deny]]")
        .count();
    assert_eq!(policy.rules.len(), entries);
}

#[test]
fn every_entry_says_why() {
    for rule in &policy().rules {
        assert!(!rule.why.trim().is_empty(), "no why for {:?}", rule.syscalls);
    }
}

#[test]
fn required_syscalls_are_denied_on_every_call_with_eperm() {
    let policy = policy();
    for &syscall in DENIED_WITH_EPERM {
        let rule = policy
            .denying_rule(syscall, &[0; 6])
            .unwrap_or_else(|| panic!("{syscall} is not denied"));
        assert!(rule.when.is_empty(), "{syscall} is denied only conditionally");
        assert_eq!(rule.action, DenyAction::Errno(Errno::Eperm), "{syscall}");
    }
}

#[test]
fn clone3_gets_enosys_so_libc_falls_back_to_clone() {
    let rule = policy()
        .denying_rule("clone3", &[0; 6])
        .cloned()
        .expect("clone3 is denied");
    assert!(rule.when.is_empty());
    assert_eq!(rule.action, DenyAction::Errno(Errno::Enosys));
}

#[test]
fn membarrier_fails_with_an_errno_instead_of_killing() {
    // The .NET runtime probes membarrier and falls back when it fails; a kill would take the worker down.
    let policy = policy();
    // MEMBARRIER_CMD_QUERY, MEMBARRIER_CMD_GLOBAL, MEMBARRIER_CMD_PRIVATE_EXPEDITED.
    for command in [0, 1, 8] {
        assert_eq!(action_for(&policy, "membarrier", args(command, 0)), EPERM, "{command}");
    }
}

#[test]
fn clone_with_any_namespace_flag_is_denied() {
    let policy = policy();
    for flag in NAMESPACE_FLAGS {
        assert_eq!(action_for(&policy, "clone", args(flag, 0)), EPERM, "{flag:#x}");
        assert_eq!(
            action_for(&policy, "clone", args(flag | FORK_CLONE_FLAGS, 0)),
            EPERM,
            "{flag:#x}"
        );
        assert_eq!(
            action_for(&policy, "clone", args(flag | THREAD_CLONE_FLAGS, 0)),
            EPERM,
            "{flag:#x}"
        );
    }
    assert_eq!(
        action_for(
            &policy,
            "clone",
            args(NAMESPACE_FLAGS.iter().fold(0, |all, flag| all | flag), 0)
        ),
        EPERM
    );
}

#[test]
fn clone_rules_are_one_full_width_flag_test_per_namespace() {
    let mut masks: Vec<u64> = policy()
        .rules
        .iter()
        .filter(|rule| rule.syscalls.iter().any(|syscall| syscall == "clone"))
        .map(|rule| {
            assert_eq!(rule.syscalls, ["clone"]);
            let [condition] = rule.when[..] else {
                panic!("clone rule {rule:?} has not exactly one condition");
            };
            assert_eq!((condition.arg, condition.width), (0, ArgWidth::Qword));
            assert_eq!(condition.op, ArgOp::MaskedEq { mask: condition.value });
            condition.value
        })
        .collect();
    masks.sort_unstable();
    let mut expected = NAMESPACE_FLAGS.to_vec();
    expected.sort_unstable();
    assert_eq!(masks, expected);
}

#[test]
fn tiocsti_and_tioclinux_compare_the_low_32_bits_of_arg_1() {
    let policy = policy();
    for request in [TIOCSTI, TIOCLINUX] {
        let rules: Vec<&DenyRule> = policy
            .rules
            .iter()
            .filter(|rule| rule.when.iter().any(|c| c.value == request))
            .collect();
        assert_eq!(rules.len(), 1, "{request:#x}");
        assert_eq!(rules[0].syscalls, ["ioctl"]);
        assert_eq!(
            rules[0].when,
            [ArgCondition {
                arg: 1,
                width: ArgWidth::Dword,
                op: ArgOp::Eq,
                value: request
            }]
        );
        assert_eq!(action_for(&policy, "ioctl", args(0, request)), EPERM);
        // The kernel truncates the request to 32 bits, so high bits must not get it past the filter.
        assert_eq!(
            action_for(&policy, "ioctl", args(0, 0xffff_ffff_0000_0000 | request)),
            EPERM
        );
    }
    // TCGETS, FIONREAD, FIONBIO: ordinary terminal and file ioctls.
    for request in [0x5401, 0x541B, 0x5421] {
        assert_eq!(action_for(&policy, "ioctl", args(0, request)), None, "{request:#x}");
    }
}

#[test]
fn only_af_unix_sockets_may_be_created() {
    let policy = policy();
    for syscall in ["socket", "socketpair"] {
        assert_eq!(action_for(&policy, syscall, args(AF_UNIX, 1)), None, "{syscall}");
        // The domain is an int: the kernel sees AF_UNIX whatever the high bits say.
        assert_eq!(
            action_for(&policy, syscall, args(0xffff_ffff_0000_0000 | AF_UNIX, 1)),
            None,
            "{syscall}"
        );
        // AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_VSOCK, and AF_INET dressed up with high bits.
        for domain in [2, 10, 16, 17, 40, 0x1_0000_0002] {
            assert_eq!(
                action_for(&policy, syscall, args(domain, 1)),
                EPERM,
                "{syscall} {domain:#x}"
            );
        }
    }
}

#[test]
fn only_prctl_pr_set_seccomp_is_denied() {
    let policy = policy();
    assert_eq!(action_for(&policy, "prctl", args(PR_SET_SECCOMP, 2)), EPERM);
    assert_eq!(
        action_for(&policy, "prctl", args(0xffff_ffff_0000_0000 | PR_SET_SECCOMP, 2)),
        EPERM
    );
    // PR_SET_NAME, PR_GET_NAME, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, PR_SET_VMA.
    for option in [15, 16, 38, 1, 0x5356_4d41] {
        assert_eq!(action_for(&policy, "prctl", args(option, 0)), None, "{option}");
    }
}

#[test]
fn what_the_dotnet_runtime_needs_to_start_is_allowed() {
    const PROT_READ_EXEC: u64 = 0x5;
    const MFD_CLOEXEC: u64 = 1;
    let policy = policy();
    let calls: &[(&str, [u64; 6])] = &[
        ("clone", args(THREAD_CLONE_FLAGS, 0)),
        ("clone", args(FORK_CLONE_FLAGS, 0)),
        ("mmap", [0, 4096, PROT_READ_EXEC, 0x22, u64::MAX, 0]),
        ("mprotect", args(0x7f00_0000_0000, 4096)),
        ("memfd_create", args(0x1000, MFD_CLOEXEC)),
        ("futex", args(0x7f00_0000_0000, 0x81)),
        ("madvise", args(0x7f00_0000_0000, 4096)),
        ("sched_getaffinity", args(0, 128)),
        ("sched_yield", args(0, 0)),
        ("epoll_create1", args(0x80000, 0)),
        ("epoll_ctl", args(3, 1)),
        ("epoll_pwait", args(3, 0)),
        ("eventfd2", args(0, 0x80000)),
        ("pipe2", args(0x7f00_0000_0000, 0x80000)),
        ("socket", args(AF_UNIX, 1)),
        ("socketpair", args(AF_UNIX, 1)),
        ("prctl", args(15, 0x7f00_0000_0000)),
        ("ioctl", args(0, 0x5401)),
        ("rt_sigaction", args(11, 0)),
        ("openat", args(u64::MAX - 99, 0)),
        ("getrandom", args(0x7f00_0000_0000, 16)),
    ];
    for (syscall, call_args) in calls {
        assert_eq!(
            policy.denying_rule(syscall, call_args),
            None,
            "{syscall} {call_args:x?}"
        );
    }
}

#[test]
fn errno_numbers_agree_with_libc() {
    let libc_numbers = [
        (Errno::Eperm, libc::EPERM),
        (Errno::Eacces, libc::EACCES),
        (Errno::Enosys, libc::ENOSYS),
        (Errno::Eafnosupport, libc::EAFNOSUPPORT),
    ];
    assert_eq!(libc_numbers.len(), Errno::ALL.len());
    for (errno, number) in libc_numbers {
        assert_eq!(i64::from(errno.number()), i64::from(number), "{}", errno.name());
        assert_eq!(Errno::from_name(errno.name()), Some(errno));
    }
    assert_eq!(Errno::from_name("eperm"), None);
}

// --- The parser --------------------------------------------------------------------------------------------------

fn rule_problem(text: &str) -> RuleProblem {
    match parse_seccomp_policy(text) {
        Err(PolicyError::Rule { problem, .. }) => problem,
        other => panic!("expected a rule problem, got {other:?}"),
    }
}

fn entry(fields: &str) -> String {
    format!("[[deny]]\nsyscalls = [\"ioctl\"]\nwhy = \"test\"\n{fields}\n")
}

fn with_condition(condition: &str) -> String {
    entry(&format!("errno = \"EPERM\"\nwhen = [{condition}]"))
}

#[test]
fn a_minimal_policy_parses_into_the_typed_model() {
    let policy = parse_seccomp_policy(
        r#"
        [[deny]]
        syscalls = ["ptrace"]
        action = "kill"
        why = "  no debugging  "

        [[deny]]
        syscalls = ["clone", "socket"]
        errno = "EAFNOSUPPORT"
        when = [{ arg = 0, width = 64, op = "masked_eq", mask = 0xff00, value = 0x0100 }, { arg = 5, width = 32, op = "ne", value = 0xffffffff }]
        why = "test"
        "#,
    )
    .expect("valid policy");
    assert_eq!(
        policy,
        SeccompPolicy {
            rules: vec![
                DenyRule {
                    syscalls: vec!["ptrace".to_owned()],
                    action: DenyAction::KillProcess,
                    when: vec![],
                    why: "no debugging".to_owned(),
                },
                DenyRule {
                    syscalls: vec!["clone".to_owned(), "socket".to_owned()],
                    action: DenyAction::Errno(Errno::Eafnosupport),
                    when: vec![
                        ArgCondition {
                            arg: 0,
                            width: ArgWidth::Qword,
                            op: ArgOp::MaskedEq { mask: 0xff00 },
                            value: 0x0100
                        },
                        ArgCondition {
                            arg: 5,
                            width: ArgWidth::Dword,
                            op: ArgOp::Ne,
                            value: 0xffff_ffff
                        },
                    ],
                    why: "test".to_owned(),
                },
            ]
        }
    );
    // Conditions in one entry are ANDed.
    assert!(policy.denying_rule("socket", &[0x01ff, 0, 0, 0, 0, 0]).is_some());
    assert!(
        policy
            .denying_rule("socket", &[0x01ff, 0, 0, 0, 0, 0xffff_ffff])
            .is_none()
    );
    assert!(policy.denying_rule("socket", &[0x02ff, 0, 0, 0, 0, 0]).is_none());
}

#[test]
fn every_entry_must_say_why() {
    let text = "[[deny]]\nsyscalls = [\"ptrace\"]\nerrno = \"EPERM\"\n";
    assert_eq!(rule_problem(text), RuleProblem::MissingWhy);
    assert_eq!(rule_problem(&format!("{text}why = \" \"\n")), RuleProblem::MissingWhy);
}

#[test]
fn the_entry_number_is_reported() {
    let text = format!(
        "{}{}",
        entry("errno = \"EPERM\""),
        "[[deny]]\nsyscalls = [\"bpf\"]\nerrno = \"EPERM\"\n"
    );
    let error = parse_seccomp_policy(&text).expect_err("second entry has no why");
    assert!(
        matches!(
            error,
            PolicyError::Rule {
                entry: 2,
                problem: RuleProblem::MissingWhy
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "[[deny]] entry 2: missing or empty `why`");
}

#[test]
fn syscalls_must_be_a_non_empty_list_of_plain_names() {
    assert_eq!(
        rule_problem("[[deny]]\nerrno = \"EPERM\"\nwhy = \"x\"\n"),
        RuleProblem::NoSyscalls
    );
    assert_eq!(
        rule_problem("[[deny]]\nsyscalls = []\nerrno = \"EPERM\"\nwhy = \"x\"\n"),
        RuleProblem::NoSyscalls
    );
    for name in ["SYS_ptrace", "ptrace ", "", "io-uring"] {
        let text = format!("[[deny]]\nsyscalls = [{name:?}]\nerrno = \"EPERM\"\nwhy = \"x\"\n");
        assert_eq!(rule_problem(&text), RuleProblem::InvalidSyscallName(name.to_owned()));
    }
    let text = "[[deny]]\nsyscalls = [\"bpf\", \"bpf\"]\nerrno = \"EPERM\"\nwhy = \"x\"\n";
    assert_eq!(rule_problem(text), RuleProblem::DuplicateSyscall("bpf".to_owned()));
}

#[test]
fn exactly_one_known_errno_or_action() {
    assert_eq!(rule_problem(&entry("")), RuleProblem::MissingAction);
    assert_eq!(
        rule_problem(&entry("errno = \"EPERM\"\naction = \"kill\"")),
        RuleProblem::BothErrnoAndAction
    );
    assert_eq!(
        rule_problem(&entry("errno = \"EWHATEVER\"")),
        RuleProblem::UnknownErrno("EWHATEVER".to_owned())
    );
    assert_eq!(
        rule_problem(&entry("action = \"allow\"")),
        RuleProblem::UnknownAction("allow".to_owned())
    );
}

#[test]
fn conditions_are_validated() {
    let cases = [
        (
            "{ arg = 6, width = 64, op = \"eq\", value = 1 }",
            RuleProblem::ArgOutOfRange(6),
        ),
        (
            "{ arg = -1, width = 64, op = \"eq\", value = 1 }",
            RuleProblem::ArgOutOfRange(-1),
        ),
        (
            "{ arg = 1, width = 16, op = \"eq\", value = 1 }",
            RuleProblem::InvalidWidth(16),
        ),
        (
            "{ arg = 1, width = 64, op = \"gt\", value = 1 }",
            RuleProblem::UnknownOp("gt".to_owned()),
        ),
        (
            "{ arg = 1, width = 64, op = \"masked_eq\", value = 1 }",
            RuleProblem::MissingMask,
        ),
        (
            "{ arg = 1, width = 64, op = \"eq\", mask = 1, value = 1 }",
            RuleProblem::UnexpectedMask,
        ),
        (
            "{ arg = 1, width = 64, op = \"masked_eq\", mask = 0, value = 0 }",
            RuleProblem::ZeroMask,
        ),
        (
            "{ arg = 1, width = 64, op = \"masked_eq\", mask = 0x10, value = 0x11 }",
            RuleProblem::ValueOutsideMask {
                value: 0x11,
                mask: 0x10,
            },
        ),
        (
            "{ arg = 1, width = 64, op = \"eq\", value = -1 }",
            RuleProblem::Negative {
                field: "value",
                value: -1,
            },
        ),
        (
            "{ arg = 1, width = 32, op = \"eq\", value = 0x100005412 }",
            RuleProblem::TooWide {
                field: "value",
                value: 0x1_0000_5412,
            },
        ),
        (
            "{ arg = 1, width = 32, op = \"masked_eq\", mask = 0x100000000, value = 0 }",
            RuleProblem::TooWide {
                field: "mask",
                value: 0x1_0000_0000,
            },
        ),
    ];
    for (condition, problem) in cases {
        assert_eq!(rule_problem(&with_condition(condition)), problem, "{condition}");
    }
    assert_eq!(
        rule_problem(&entry("errno = \"EPERM\"\nwhen = []")),
        RuleProblem::EmptyWhen
    );
}

#[test]
fn unknown_and_missing_fields_are_syntax_errors() {
    let typo = "[[deny]]\nsyscalls = [\"bpf\"]\nerrno = \"EPERM\"\nwyh = \"x\"\n";
    assert!(matches!(parse_seccomp_policy(typo), Err(PolicyError::Syntax(_))));
    let no_width = with_condition("{ arg = 1, op = \"eq\", value = 1 }");
    assert!(matches!(parse_seccomp_policy(&no_width), Err(PolicyError::Syntax(_))));
    // TOML cannot hold a 64-bit value above i64::MAX.
    let too_big = with_condition("{ arg = 1, width = 64, op = \"eq\", value = 0xffffffffffffffff }");
    assert!(matches!(parse_seccomp_policy(&too_big), Err(PolicyError::Syntax(_))));
    assert!(matches!(parse_seccomp_policy("deny = 1"), Err(PolicyError::Syntax(_))));
}

#[test]
fn an_empty_policy_is_rejected() {
    assert!(matches!(parse_seccomp_policy(""), Err(PolicyError::Empty)));
}

#[test]
fn entries_on_one_syscall_must_not_depend_on_order() {
    let unconditional = "[[deny]]\nsyscalls = [\"ioctl\"]\nerrno = \"EPERM\"\nwhy = \"x\"\n";
    let conditional = with_condition("{ arg = 1, width = 32, op = \"eq\", value = 0x5412 }");
    for text in [
        format!("{unconditional}{conditional}"),
        format!("{conditional}{unconditional}"),
    ] {
        let error = parse_seccomp_policy(&text).expect_err("shadowed entry");
        assert!(
            matches!(&error, PolicyError::Conflict { syscall, first: 1, second: 2, .. } if syscall == "ioctl"),
            "{error:?}"
        );
    }
    let killing = "[[deny]]\nsyscalls = [\"ioctl\"]\naction = \"kill\"\nwhy = \"x\"\n\
                   when = [{ arg = 1, width = 32, op = \"eq\", value = 0x541C }]\n";
    let error = parse_seccomp_policy(&format!("{conditional}{killing}")).expect_err("actions differ");
    assert!(matches!(error, PolicyError::Conflict { .. }), "{error:?}");
    let same_action = conditional.replace("0x5412", "0x541C");
    parse_seccomp_policy(&format!("{conditional}{same_action}")).expect("conditional entries with one action");
}
