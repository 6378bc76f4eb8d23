//! The sandbox's seccomp policy: a deny-list, kept as data in `seccomp.toml`, and its parser.
//!
//! The policy is applied on top of a default "allow": every rule names syscalls that are refused (with an errno, or by
//! killing the process), optionally only when their arguments match. Every rule carries a `why`. Syscalls stay names
//! here; the executor maps them to numbers with the C library's constants and compiles the filter.

use std::collections::HashMap;

use serde::Deserialize;

/// The seccomp deny-list of the sandbox, as written in `policy/seccomp.toml`.
pub fn sandbox_seccomp_policy() -> Result<SeccompPolicy, PolicyError> {
    parse_seccomp_policy(SANDBOX_SECCOMP_TOML)
}

/// Parses and validates a seccomp policy in the format of `policy/seccomp.toml`.
pub fn parse_seccomp_policy(text: &str) -> Result<SeccompPolicy, PolicyError> {
    let raw: RawPolicy = toml::from_str(text)?;
    if raw.deny.is_empty() {
        return Err(PolicyError::Empty);
    }
    let rules = raw
        .deny
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            DenyRule::from_raw(raw).map_err(|problem| PolicyError::Rule {
                entry: index + 1,
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_rules_agree(&rules)?;
    Ok(SeccompPolicy { rules })
}

/// A validated seccomp policy: the listed calls are denied, everything else is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompPolicy {
    pub rules: Vec<DenyRule>,
}

/// One `[[deny]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    /// x86_64 syscall names as in libc `SYS_*`, without the prefix.
    pub syscalls: Vec<String>,
    pub action: DenyAction,
    /// Conditions on the arguments, all of which must hold; empty means every call is denied.
    pub when: Vec<ArgCondition>,
    /// Why the calls are denied; never empty.
    pub why: String,
}

/// What happens to a denied call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyAction {
    /// The call fails with this errno (`SECCOMP_RET_ERRNO`).
    Errno(Errno),
    /// The whole process is killed (`SECCOMP_RET_KILL_PROCESS`).
    KillProcess,
}

/// The errnos a policy may return, by their C names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    Eperm,
    Eacces,
    Enosys,
    Eafnosupport,
}

/// A condition on one argument of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCondition {
    /// Argument index, 0..=5.
    pub arg: u8,
    pub width: ArgWidth,
    pub op: ArgOp,
    /// Fits in `width`.
    pub value: u64,
}

/// How much of the argument register is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgWidth {
    /// The low 32 bits only, as the kernel sees `int` arguments and ioctl request numbers.
    Dword,
    /// All 64 bits.
    Qword,
}

/// How the argument is compared with the condition's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgOp {
    Eq,
    Ne,
    /// `(arg & mask) == value`; `mask` fits in the width and is non-zero, and `value` has no bits outside it.
    MaskedEq {
        mask: u64,
    },
}

/// Why a seccomp policy was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("parse seccomp policy")]
    Syntax(#[from] toml::de::Error),
    #[error("seccomp policy has no [[deny]] entries")]
    Empty,
    /// `entry` counts the `[[deny]]` entries from 1.
    #[error("[[deny]] entry {entry}: {problem}")]
    Rule { entry: usize, problem: RuleProblem },
    /// A syscall is denied unconditionally by one entry and named again by another, or two entries on one syscall
    /// disagree on the action; either way the result would depend on the order of the entries.
    #[error("syscall {syscall:?} in [[deny]] entries {first} and {second}: {reason}")]
    Conflict {
        syscall: String,
        first: usize,
        second: usize,
        reason: &'static str,
    },
}

/// What is wrong with one `[[deny]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    #[error("missing or empty `why`")]
    MissingWhy,
    #[error("missing or empty `syscalls`")]
    NoSyscalls,
    #[error("invalid syscall name {0:?} (expected [a-z0-9_]+)")]
    InvalidSyscallName(String),
    #[error("syscall {0:?} listed twice")]
    DuplicateSyscall(String),
    #[error("neither `errno` nor `action` given")]
    MissingAction,
    #[error("both `errno` and `action` given")]
    BothErrnoAndAction,
    #[error("unknown errno {0:?}")]
    UnknownErrno(String),
    #[error("unknown action {0:?} (expected \"kill\", or use `errno`)")]
    UnknownAction(String),
    #[error("empty `when` list (leave it out to deny every call)")]
    EmptyWhen,
    #[error("argument index {0} out of range 0..=5")]
    ArgOutOfRange(i64),
    #[error("width {0} is not 32 or 64")]
    InvalidWidth(i64),
    #[error("unknown op {0:?} (expected \"eq\", \"ne\" or \"masked_eq\")")]
    UnknownOp(String),
    #[error("`masked_eq` requires `mask`")]
    MissingMask,
    #[error("`mask` is only valid with `masked_eq`")]
    UnexpectedMask,
    #[error("`mask` is zero")]
    ZeroMask,
    #[error("`{field}` is negative: {value}")]
    Negative { field: &'static str, value: i64 },
    #[error("`{field}` {value:#x} does not fit in 32 bits")]
    TooWide { field: &'static str, value: u64 },
    #[error("`value` {value:#x} has bits outside `mask` {mask:#x}, so the condition never holds")]
    ValueOutsideMask { value: u64, mask: u64 },
}

impl SeccompPolicy {
    /// The rule that denies `syscall` called with `args`, if any: the policy's meaning, for tests and for checking
    /// a compiled filter against the file.
    pub fn denying_rule(&self, syscall: &str, args: &[u64; 6]) -> Option<&DenyRule> {
        self.rules.iter().find(|rule| rule.denies(syscall, args))
    }
}

impl DenyRule {
    /// Whether this rule denies `syscall` called with `args`.
    pub fn denies(&self, syscall: &str, args: &[u64; 6]) -> bool {
        self.syscalls.iter().any(|name| name == syscall) && self.when.iter().all(|condition| condition.holds(args))
    }
}

impl Errno {
    pub const ALL: [Errno; 4] = [Errno::Eperm, Errno::Eacces, Errno::Enosys, Errno::Eafnosupport];

    /// The errno with this C name (`"EPERM"`), if the policy format knows it.
    pub fn from_name(name: &str) -> Option<Errno> {
        Errno::ALL.into_iter().find(|errno| errno.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Errno::Eperm => "EPERM",
            Errno::Eacces => "EACCES",
            Errno::Enosys => "ENOSYS",
            Errno::Eafnosupport => "EAFNOSUPPORT",
        }
    }

    /// The number on Linux, as `SECCOMP_RET_ERRNO` carries it.
    pub fn number(self) -> u32 {
        match self {
            Errno::Eperm => 1,
            Errno::Eacces => 13,
            Errno::Enosys => 38,
            Errno::Eafnosupport => 97,
        }
    }
}

impl ArgCondition {
    /// Whether the condition holds for a call with these arguments.
    pub fn holds(&self, args: &[u64; 6]) -> bool {
        let arg = args[usize::from(self.arg)] & self.width.mask();
        match self.op {
            ArgOp::Eq => arg == self.value,
            ArgOp::Ne => arg != self.value,
            ArgOp::MaskedEq { mask } => arg & mask == self.value,
        }
    }
}

impl ArgWidth {
    pub fn bits(self) -> u32 {
        match self {
            ArgWidth::Dword => 32,
            ArgWidth::Qword => 64,
        }
    }

    /// The bits of the argument that are compared.
    pub fn mask(self) -> u64 {
        match self {
            ArgWidth::Dword => u64::from(u32::MAX),
            ArgWidth::Qword => u64::MAX,
        }
    }
}

const SANDBOX_SECCOMP_TOML: &str = include_str!("../seccomp.toml");

const MAX_ARG: i64 = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    deny: Vec<RawRule>,
}

// Fields are optional here so that a missing one gets a precise `RuleProblem` rather than a serde message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    syscalls: Option<Vec<String>>,
    errno: Option<String>,
    action: Option<String>,
    when: Option<Vec<RawCondition>>,
    why: Option<String>,
}

// TOML integers are i64: a 64-bit value above i64::MAX cannot be written, and negative ones are rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    arg: i64,
    width: i64,
    op: String,
    value: i64,
    mask: Option<i64>,
}

impl DenyRule {
    fn from_raw(raw: RawRule) -> Result<DenyRule, RuleProblem> {
        let why = raw.why.map(|why| why.trim().to_owned()).unwrap_or_default();
        if why.is_empty() {
            return Err(RuleProblem::MissingWhy);
        }
        let syscalls = raw.syscalls.unwrap_or_default();
        if syscalls.is_empty() {
            return Err(RuleProblem::NoSyscalls);
        }
        for (index, name) in syscalls.iter().enumerate() {
            if !is_syscall_name(name) {
                return Err(RuleProblem::InvalidSyscallName(name.clone()));
            }
            if syscalls[..index].contains(name) {
                return Err(RuleProblem::DuplicateSyscall(name.clone()));
            }
        }
        let action = match (raw.errno, raw.action) {
            (None, None) => return Err(RuleProblem::MissingAction),
            (Some(_), Some(_)) => return Err(RuleProblem::BothErrnoAndAction),
            (Some(errno), None) => DenyAction::Errno(Errno::from_name(&errno).ok_or(RuleProblem::UnknownErrno(errno))?),
            (None, Some(action)) if action == "kill" => DenyAction::KillProcess,
            (None, Some(action)) => return Err(RuleProblem::UnknownAction(action)),
        };
        let when = match raw.when {
            None => Vec::new(),
            Some(conditions) if conditions.is_empty() => return Err(RuleProblem::EmptyWhen),
            Some(conditions) => conditions
                .into_iter()
                .map(ArgCondition::from_raw)
                .collect::<Result<_, _>>()?,
        };
        Ok(DenyRule {
            syscalls,
            action,
            when,
            why,
        })
    }
}

impl ArgCondition {
    fn from_raw(raw: RawCondition) -> Result<ArgCondition, RuleProblem> {
        let arg = match u8::try_from(raw.arg) {
            Ok(arg) if i64::from(arg) <= MAX_ARG => arg,
            _ => return Err(RuleProblem::ArgOutOfRange(raw.arg)),
        };
        let width = match raw.width {
            32 => ArgWidth::Dword,
            64 => ArgWidth::Qword,
            other => return Err(RuleProblem::InvalidWidth(other)),
        };
        let value = fit_width("value", raw.value, width)?;
        let op = match (raw.op.as_str(), raw.mask) {
            ("eq" | "ne", Some(_)) => return Err(RuleProblem::UnexpectedMask),
            ("eq", None) => ArgOp::Eq,
            ("ne", None) => ArgOp::Ne,
            ("masked_eq", None) => return Err(RuleProblem::MissingMask),
            ("masked_eq", Some(mask)) => {
                let mask = fit_width("mask", mask, width)?;
                if mask == 0 {
                    return Err(RuleProblem::ZeroMask);
                }
                if value & !mask != 0 {
                    return Err(RuleProblem::ValueOutsideMask { value, mask });
                }
                ArgOp::MaskedEq { mask }
            }
            (other, _) => return Err(RuleProblem::UnknownOp(other.to_owned())),
        };
        Ok(ArgCondition { arg, width, op, value })
    }
}

fn fit_width(field: &'static str, value: i64, width: ArgWidth) -> Result<u64, RuleProblem> {
    let value = u64::try_from(value).map_err(|_| RuleProblem::Negative { field, value })?;
    if value & !width.mask() != 0 {
        return Err(RuleProblem::TooWide { field, value });
    }
    Ok(value)
}

fn is_syscall_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

/// Entries on one syscall must agree: an unconditional entry is the only one on its syscall, and conditional entries
/// share their action. Then no call matches two entries with different outcomes, and order never matters.
fn check_rules_agree(rules: &[DenyRule]) -> Result<(), PolicyError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, rule) in rules.iter().enumerate() {
        for syscall in &rule.syscalls {
            let Some(&previous) = seen.get(syscall.as_str()) else {
                seen.insert(syscall, index);
                continue;
            };
            let earlier = &rules[previous];
            let reason = if earlier.when.is_empty() || rule.when.is_empty() {
                "an entry without `when` must be the only one on its syscall"
            } else if earlier.action != rule.action {
                "entries on one syscall must share the action"
            } else {
                continue;
            };
            return Err(PolicyError::Conflict {
                syscall: syscall.clone(),
                first: previous + 1,
                second: index + 1,
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
