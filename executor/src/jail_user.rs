//! The jail's user: a uid and gid of its own, which no host account shares.
//!
//! Jailed programs cannot see host files or signal host processes, but the kernel still judges what they touch by
//! their uid and gid: a shared id (`nobody`, 65534, is used by NFS, overlay mounts and many daemons) would make a
//! jailed program the owner of whatever the host gave that account, should any hole ever let it reach it. So the jail
//! runs under ids of its own, taken from the range hapnd reserves, and [`check_host_accounts`] refuses to start when
//! the host's account files name them for someone else.
//!
//! The range is 61000–61183: above regular users (up to 60000) and systemd-homed (60001–60513) and container-mapped
//! host users (60514–60577), below systemd's `DynamicUser=` range (61184–65519), in the gap systemd's
//! `UIDS-GIDS.md` leaves unused. An operator who wants a name in `ps` may create the account `hapnd-jail` with the
//! jail's ids; any other account holding them stops the sandbox with an error naming the fix.

use std::path::{Path, PathBuf};

/// The uid jailed programs run as unless configured otherwise: the first of hapnd's range.
pub const DEFAULT_JAIL_UID: u32 = 61000;
/// The gid jailed programs run as unless configured otherwise.
pub const DEFAULT_JAIL_GID: u32 = 61000;
/// The ids hapnd reserves for its jails.
pub const JAIL_ID_RANGE: std::ops::RangeInclusive<u32> = 61000..=61183;
/// The one account name that may hold the jail's uid or gid on the host.
pub const JAIL_ACCOUNT_NAME: &str = "hapnd-jail";

/// The host's account files, where the jail's ids must not belong to anyone but hapnd.
pub const HOST_PASSWD: &str = "/etc/passwd";
pub const HOST_GROUP: &str = "/etc/group";

#[derive(Debug, thiserror::Error)]
pub enum JailUserError {
    #[error("the jail's uid and gid must not be 0")]
    Root,
    #[error(
        "the jail's {kind} {id} belongs to the host's {entry:?} in {}, so jailed programs would share its files and \
         processes: give {entry:?} another {kind}, or configure a jail {kind} no host account uses (hapnd reserves \
         61000-61183; an entry named {JAIL_ACCOUNT_NAME:?} may hold it)",
        .file.display()
    )]
    Shared {
        /// `uid` or `gid`.
        kind: &'static str,
        id: u32,
        /// The host's account or group that holds the id.
        entry: String,
        file: PathBuf,
    },
    #[error("read the host's accounts in {}: {error}", .file.display())]
    Read { file: PathBuf, error: std::io::Error },
}

/// Refuses uid or gid 0, and ids that `passwd` (for the uid) or `group` (for the gid) give to an account other than
/// [`JAIL_ACCOUNT_NAME`]. A missing file names nobody.
pub fn check_host_accounts(uid: u32, gid: u32, passwd: &Path, group: &Path) -> Result<(), JailUserError> {
    if uid == 0 || gid == 0 {
        return Err(JailUserError::Root);
    }
    for (kind, id, file) in [("uid", uid, passwd), ("gid", gid, group)] {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(JailUserError::Read {
                    file: file.to_owned(),
                    error,
                });
            }
        };
        if let Some(entry) = foreign_holder(&text, id) {
            return Err(JailUserError::Shared {
                kind,
                id,
                entry: entry.to_owned(),
                file: file.to_owned(),
            });
        }
    }
    Ok(())
}

/// The first entry of an `/etc/passwd` or `/etc/group` text (`name:password:id:...`) that holds `id` under a name
/// other than hapnd's.
fn foreign_holder(text: &str, id: u32) -> Option<&str> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let holds = fields.nth(1)?.trim().parse::<u32>().ok()? == id;
            holds.then_some(name)
        })
        .find(|name| *name != JAIL_ACCOUNT_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          # a comment:x:61000:0\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                          hapnd-jail:x:61001:61001::/nonexistent:/usr/sbin/nologin\n\
                          svc:x:61002:100::/home/svc:/bin/sh\n";

    #[test]
    fn only_an_account_other_than_hapnds_holding_the_id_is_a_conflict() {
        assert_eq!(foreign_holder(PASSWD, 61000), None, "comments name nobody");
        assert_eq!(foreign_holder(PASSWD, 61001), None, "hapnd's own entry may hold it");
        assert_eq!(foreign_holder(PASSWD, 61002), Some("svc"));
        assert_eq!(foreign_holder(PASSWD, 65534), Some("nobody"));
        assert_eq!(foreign_holder("nogroup:x:65534:\n", 65534), Some("nogroup"));
        assert_eq!(foreign_holder("broken line\n::\n", 0), None);
    }

    #[test]
    fn the_host_files_are_checked_and_the_error_names_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        std::fs::write(&passwd, PASSWD).expect("write");
        std::fs::write(&group, "nogroup:x:65534:\nsvc:x:61000:\n").expect("write");

        check_host_accounts(61001, 61001, &passwd, &group).expect("hapnd-jail's ids and an unused gid are fine");
        let error = check_host_accounts(61002, 61001, &passwd, &group).expect_err("svc holds the uid");
        assert!(
            matches!(&error, JailUserError::Shared { kind: "uid", id: 61002, entry, .. } if entry == "svc"),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("give \"svc\" another uid, or configure a jail uid no host account uses"),
            "{message}"
        );
        let error = check_host_accounts(61001, 61000, &passwd, &group).expect_err("svc holds the gid");
        assert!(
            matches!(&error, JailUserError::Shared { kind: "gid", id: 61000, entry, .. } if entry == "svc"),
            "{error}"
        );
        assert!(matches!(
            check_host_accounts(0, 61001, &passwd, &group),
            Err(JailUserError::Root)
        ));
        let missing = dir.path().join("missing");
        check_host_accounts(65534, 65534, &missing, &missing).expect("a missing file names nobody");
    }

    #[test]
    fn the_default_ids_are_in_hapnds_range_below_systemds_dynamic_users() {
        assert!(JAIL_ID_RANGE.contains(&DEFAULT_JAIL_UID) && JAIL_ID_RANGE.contains(&DEFAULT_JAIL_GID));
        assert!(*JAIL_ID_RANGE.end() < 61184);
    }
}
