//! Which supervisor a jail's cgroup belongs to, written into its name: `jail-<pid>-<start>-<n>`, where `<start>` is
//! the supervisor's start time (clock ticks since boot, `/proc/<pid>/stat`). A pid alone is not enough: a supervisor
//! killed with SIGKILL leaves its cgroups behind, pids are reused (`pid_max` is often 32,768), and a new process with
//! the old pid would otherwise meet cgroups it did not make, with limits it did not set. Pid and start time together
//! name one process for the life of the host, so a cgroup whose owner is no longer running can be recognised and
//! removed, and no two supervisors ever pick the same name.

use std::fs;

/// One running (or once running) supervisor process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupOwner {
    pub pid: u32,
    pub start_ticks: u64,
}

const PREFIX: &str = "jail-";

impl CgroupOwner {
    /// This process. `None` only where `/proc` is not mounted, which [`crate::Sandbox::new`] never meets on a host
    /// that can build jails.
    pub fn current() -> Option<Self> {
        let pid = std::process::id();
        Some(CgroupOwner {
            pid,
            start_ticks: start_ticks(pid)?,
        })
    }

    /// The name of this owner's `n`th jail cgroup.
    pub fn jail_name(&self, n: u64) -> String {
        format!("{PREFIX}{}-{}-{n}", self.pid, self.start_ticks)
    }

    /// The owner a jail cgroup's name records; `None` for a name this scheme did not make.
    pub fn of_jail_name(name: &str) -> Option<Self> {
        let mut parts = name.strip_prefix(PREFIX)?.split('-');
        let pid = parts.next()?.parse().ok()?;
        let start_ticks = parts.next()?.parse().ok()?;
        parts.next()?.parse::<u64>().ok()?;
        parts.next().is_none().then_some(CgroupOwner { pid, start_ticks })
    }

    /// Whether this very process still runs: its pid exists and started at the recorded time.
    pub fn is_running(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// Whether a directory under the jails' parent is a jail cgroup left by a supervisor that no longer runs. Names in
/// an older scheme (`jail-<pid>-<n>`, without the start time) cannot be told apart from a live supervisor's and
/// count as left over too: only an empty cgroup can be removed, so a live jail is never touched, and a cgroup made
/// ahead of need by a supervisor of that older scheme would only be made again.
pub fn is_left_over(name: &str) -> bool {
    if !name.starts_with(PREFIX) {
        return false;
    }
    match CgroupOwner::of_jail_name(name) {
        Some(owner) => !owner.is_running(),
        None => true,
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks after boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

/// The command name (field 2) is in parentheses and may itself hold spaces or parentheses, so fields are counted
/// from the last `)`: the state is field 3, the start time field 22.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jail_name_records_its_owner_and_reads_back() {
        let owner = CgroupOwner {
            pid: 4242,
            start_ticks: 987_654,
        };
        let name = owner.jail_name(7);
        assert_eq!(name, "jail-4242-987654-7");
        assert_eq!(CgroupOwner::of_jail_name(&name), Some(owner));
        for foreign in ["jail-4242-7", "jail-a-1-2", "jail-1-2-3-4", "other-1-2-3", "jail-1-2-x"] {
            assert_eq!(CgroupOwner::of_jail_name(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn the_start_time_is_counted_from_the_last_parenthesis() {
        let stat = "77 (a (weird) name) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10 \
                    18446744073709551615";
        assert_eq!(parse_start_ticks(stat), Some(123_456));
        assert_eq!(parse_start_ticks("77 (short) S 1"), None);
        assert_eq!(parse_start_ticks("no parenthesis"), None);
    }

    #[test]
    fn this_process_is_running_and_a_restarted_pid_is_not_the_same_owner() {
        let me = CgroupOwner::current().expect("/proc is mounted");
        assert!(me.is_running());
        assert!(!is_left_over(&me.jail_name(0)));
        let earlier_incarnation = CgroupOwner {
            start_ticks: me.start_ticks.wrapping_sub(1),
            ..me
        };
        assert!(!earlier_incarnation.is_running());
        assert!(is_left_over(&earlier_incarnation.jail_name(0)));
        assert!(is_left_over("jail-1234-5"), "the older scheme without a start time");
        assert!(!is_left_over("cgroup.procs"), "the kernel's files are not jails");
    }
}
