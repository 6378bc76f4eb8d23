//! Step 8: Landlock over the same paths as the mounts, so a mistake in one layer is caught by the other.
//!
//! The ruleset handles every access right the running kernel knows, so anything not granted below is denied: TCP
//! bind/connect (ABI 4+, no rule grants any port), abstract unix sockets and signals beyond the jail (ABI 6+ scopes).
//! It must be fully enforced or the jail does not start (fail closed).

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, RestrictionStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::protocol::RootPlan;

pub fn restrict(plan: &RootPlan) -> Result<(), String> {
    let abi = running_abi();
    if abi == ABI::Unsupported {
        return Err("Landlock is not available in this kernel (it must be built in and enabled at boot)".into());
    }
    let read = AccessFs::from_read(abi);
    let read_files = read & !AccessFs::Execute;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| format!("landlock filesystem rights: {e}"))?;
    if abi >= ABI::V4 {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(|e| format!("landlock network rights: {e}"))?;
    }
    if abi >= ABI::V6 {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|e| format!("landlock scopes: {e}"))?;
    }
    let mut grants: Vec<(String, _)> = plan
        .read_only
        .iter()
        .map(|path| (path.to_string_lossy().into_owned(), read))
        .collect();
    grants.push((plan.scratch.to_string_lossy().into_owned(), AccessFs::from_all(abi)));
    grants.push(("/proc".into(), read_files));
    grants.push(("/dev".into(), read_files | AccessFs::WriteFile));
    let mut created = ruleset
        .create()
        .map_err(|e| format!("create the landlock ruleset: {e}"))?;
    for (path, access) in &grants {
        let fd = PathFd::new(path).map_err(|e| format!("landlock rule for {path}: {e}"))?;
        // A single file takes only the rights that apply to files (the kernel refuses directory rights on one).
        let access = if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            *access
        } else {
            *access & AccessFs::from_file(abi)
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| format!("landlock rule for {path}: {e}"))?;
    }
    let status: RestrictionStatus = created.restrict_self().map_err(|e| format!("enforce landlock: {e}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        other => Err(format!(
            "landlock is only {other:?} (ABI {abi:?}); the jail requires it fully enforced"
        )),
    }
}

/// The kernel's Landlock ABI version, asked directly.
pub fn running_abi() -> ABI {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute pointer and size 0 only returns a number.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0_usize,
            1_u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    ABI::from(i32::try_from(version).unwrap_or(0))
}
