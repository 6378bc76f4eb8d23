//! Step 2's other half: one cgroup per jail, with its memory, CPU and pids limits, on cgroup v1 (one hierarchy per
//! controller) or v2 (one unified tree). The supervisor creates it with its limits set before the jail starts; the
//! jail's init joins it; the supervisor reads its counters (out-of-memory kills, pids refusals) after the jail ended,
//! and removes it.
//!
//! The layout is plain files, read and written directly: the few operations needed are clearer here than behind a
//! library, and the same code covers both versions.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup_owner;
use crate::spec::Limits;

/// Where the controllers live on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// v1 (or hybrid): a hierarchy per controller; jails go under `<hierarchy>/<parent>/`.
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        pids: PathBuf,
    },
    /// v2: one tree; jails go under `<root>/<parent>/`, which delegates the controllers to them.
    V2 { root: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no usable cgroup controllers under {0} (need memory, cpu and pids on cgroup v1 or v2; is /sys/fs/cgroup mounted?)"
    )]
    NoControllers(PathBuf),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup {0} still has processes after they were killed")]
    Busy(PathBuf),
    #[error(
        "cannot enable the memory, cpu and pids controllers in {path}: {reason}; run hapnd in a cgroup subtree \
         delegated to it (for example a systemd unit with Delegate=yes) whose processes sit in a leaf cgroup"
    )]
    Delegation { path: PathBuf, reason: String },
}

/// What [`CgroupLayout::remove_left_over`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeftOver {
    /// Cgroups removed, counting each hierarchy's directory on v1.
    pub removed: usize,
    /// Cgroups that could not be removed, most likely because processes are still in them.
    pub busy: usize,
}

/// The counters that explain how a jail ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupEvents {
    /// Processes the kernel killed for going over the memory limit.
    pub oom_kills: u64,
    /// Forks refused by the pids limit.
    pub pids_refused: u64,
}

/// One jail's cgroup: a directory per hierarchy.
#[derive(Debug)]
pub struct Cgroup {
    layout_is_v2: bool,
    /// memory, cpu, pids on v1; the one directory on v2.
    dirs: Vec<PathBuf>,
}

impl CgroupLayout {
    /// Finds the controllers under `/sys/fs/cgroup`: pure v2 when its root lists memory, cpu and pids; otherwise
    /// the v1 hierarchies (a hybrid host's v2 tree without controllers is not usable for limits).
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    pub fn detect_at(mount: &Path) -> Result<Self, CgroupError> {
        if let Ok(controllers) = fs::read_to_string(mount.join("cgroup.controllers")) {
            let has = |name: &str| controllers.split_whitespace().any(|c| c == name);
            if has("memory") && has("cpu") && has("pids") {
                return Ok(CgroupLayout::V2 { root: mount.to_owned() });
            }
        }
        let memory = mount.join("memory");
        let cpu = mount.join("cpu");
        let pids = mount.join("pids");
        if memory.join("memory.limit_in_bytes").exists()
            && cpu.join("cpu.cfs_quota_us").exists()
            && pids.join("cgroup.procs").exists()
        {
            return Ok(CgroupLayout::V1 { memory, cpu, pids });
        }
        Err(CgroupError::NoControllers(mount.to_owned()))
    }

    pub fn version(&self) -> u8 {
        match self {
            CgroupLayout::V1 { .. } => 1,
            CgroupLayout::V2 { .. } => 2,
        }
    }

    /// Creates the parent under which jails go, delegating the controllers to its children on v2.
    pub fn prepare_parent(&self, parent: &str) -> Result<(), CgroupError> {
        match self {
            CgroupLayout::V1 { memory, cpu, pids } => {
                for hierarchy in [memory, cpu, pids] {
                    make_dir(&hierarchy.join(parent))?;
                }
            }
            CgroupLayout::V2 { root } => {
                // The controllers must be enabled on every level from the root down to the jails' parent.
                enable_controllers(root)?;
                let dir = root.join(parent);
                make_dir(&dir)?;
                enable_controllers(&dir)?;
            }
        }
        Ok(())
    }

    /// Removes the jail cgroups under `parent` that supervisors no longer running left behind (one killed with
    /// SIGKILL cannot clean up): each hierarchy would otherwise collect them for the life of the host. A cgroup
    /// that still holds processes is left alone (the kernel refuses to remove it) and counted in `busy`.
    pub fn remove_left_over(&self, parent: &str) -> LeftOver {
        let hierarchies: Vec<&PathBuf> = match self {
            CgroupLayout::V1 { memory, cpu, pids } => vec![memory, cpu, pids],
            CgroupLayout::V2 { root } => vec![root],
        };
        let mut left_over = LeftOver::default();
        for hierarchy in hierarchies {
            let Ok(entries) = fs::read_dir(hierarchy.join(parent)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !cgroup_owner::is_left_over(name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                match fs::remove_dir(entry.path()) {
                    Ok(()) => left_over.removed += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(_) => left_over.busy += 1,
                }
            }
        }
        left_over
    }

    /// Creates `parent/name` with `limits` set.
    pub fn create(&self, parent: &str, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let cgroup = match self {
            CgroupLayout::V1 { memory, cpu, pids } => {
                let cgroup = Cgroup {
                    layout_is_v2: false,
                    dirs: vec![
                        memory.join(parent).join(name),
                        cpu.join(parent).join(name),
                        pids.join(parent).join(name),
                    ],
                };
                for dir in &cgroup.dirs {
                    make_dir(dir)?;
                }
                cgroup
            }
            CgroupLayout::V2 { root } => {
                let cgroup = Cgroup {
                    layout_is_v2: true,
                    dirs: vec![root.join(parent).join(name)],
                };
                make_dir(&cgroup.dirs[0])?;
                cgroup
            }
        };
        // A half-configured cgroup must not survive a failure here.
        if let Err(error) = cgroup.set_limits(limits) {
            let _ = cgroup.remove();
            return Err(error);
        }
        Ok(cgroup)
    }
}

impl Cgroup {
    /// A handle on no cgroup, for a jail whose cgroup was already removed.
    pub(crate) fn detached() -> Cgroup {
        Cgroup {
            layout_is_v2: false,
            dirs: Vec::new(),
        }
    }

    fn set_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        let period_us: u64 = 100_000;
        let quota_us = u64::from(limits.cpu_millicores) * period_us / 1000;
        let memory = limits.memory_bytes.to_string();
        if self.layout_is_v2 {
            let dir = &self.dirs[0];
            write(&dir.join("memory.max"), &memory)?;
            // No swap: memory beyond the limit is an out-of-memory kill, not a slow jail.
            write_if_present(&dir.join("memory.swap.max"), "0")?;
            write(&dir.join("cpu.max"), &format!("{quota_us} {period_us}"))?;
            write(&dir.join("pids.max"), &limits.pids.to_string())?;
        } else {
            let (memory_dir, cpu_dir, pids_dir) = (&self.dirs[0], &self.dirs[1], &self.dirs[2]);
            let memsw = memory_dir.join("memory.memsw.limit_in_bytes");
            // The kernel keeps memory ≤ memsw (memory + swap, present only with swap accounting) at every write:
            // a limit above a memsw limit already set is refused with EINVAL until memsw is raised first.
            if let Err(error) = write(&memory_dir.join("memory.limit_in_bytes"), &memory) {
                if !(is_einval(&error) && memsw.exists()) {
                    return Err(error);
                }
                write(&memsw, &memory)?;
                write(&memory_dir.join("memory.limit_in_bytes"), &memory)?;
            }
            // Equal to the memory limit, memsw forbids swap.
            write_if_present(&memsw, &memory)?;
            write(&cpu_dir.join("cpu.cfs_period_us"), &period_us.to_string())?;
            write(&cpu_dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
            write(&pids_dir.join("pids.max"), &limits.pids.to_string())?;
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process writes itself into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|dir| dir.join("cgroup.procs")).collect()
    }

    /// Kills every process in the cgroup at once, where the kernel can (v2 with `cgroup.kill`, Linux 5.14+):
    /// `true` when it did. Otherwise the caller kills the pid namespace's init, which takes the rest with it.
    pub fn kill_all(&self) -> Result<bool, CgroupError> {
        if !self.layout_is_v2 {
            return Ok(false);
        }
        let kill = self.dirs[0].join("cgroup.kill");
        if !kill.exists() {
            return Ok(false);
        }
        write(&kill, "1")?;
        Ok(true)
    }

    pub fn events(&self) -> CgroupEvents {
        let (memory_events, pids_events) = if self.layout_is_v2 {
            (self.dirs[0].join("memory.events"), self.dirs[0].join("pids.events"))
        } else {
            (
                self.dirs[0].join("memory.oom_control"),
                self.dirs[2].join("pids.events"),
            )
        };
        CgroupEvents {
            oom_kills: read_counter(&memory_events, "oom_kill"),
            pids_refused: read_counter(&pids_events, "max"),
        }
    }

    /// Removes the cgroup once its processes are gone; the kernel may take a moment to release exited ones.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        for dir in &self.dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Err(CgroupError::Busy(dir.clone())),
                    Err(source) => {
                        return Err(CgroupError::Io {
                            action: "remove",
                            path: dir.clone(),
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

/// `key N` from a flat-keyed cgroup file; 0 when absent.
fn read_counter(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (name, value) = line.split_once(' ')?;
                (name == key).then(|| value.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

fn make_dir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        }),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

fn is_einval(error: &CgroupError) -> bool {
    matches!(error, CgroupError::Io { source, .. } if source.raw_os_error() == Some(libc::EINVAL))
}

/// The controllers jails need, as `cgroup.subtree_control` lists them.
const JAIL_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Enables the jails' controllers for the children of `dir` (v2), unless they already are: writing is refused with
/// EBUSY in a cgroup that has processes of its own (the "no internal processes" rule), which a root that is already
/// set up must not turn into a failure.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&file).unwrap_or_default();
    if JAIL_CONTROLLERS
        .iter()
        .all(|wanted| enabled.split_whitespace().any(|c| c == *wanted))
    {
        return Ok(());
    }
    fs::write(&file, "+memory +cpu +pids").map_err(|source| subtree_control_error(dir, &file, source))
}

/// A clear error for a refused `cgroup.subtree_control` write.
fn subtree_control_error(dir: &Path, file: &Path, source: std::io::Error) -> CgroupError {
    let reason = match source.raw_os_error() {
        Some(libc::EBUSY) => "the cgroup has processes of its own, and cgroup v2 lets only a cgroup without \
                              processes enable controllers for its children"
            .to_owned(),
        Some(libc::ENOENT) | Some(libc::EINVAL) => {
            "a controller is not available here (it is not in cgroup.controllers: enable it in the parent first)"
                .to_owned()
        }
        Some(libc::EACCES) | Some(libc::EPERM) => format!("{source} (the subtree is not delegated to this user)"),
        _ => {
            return CgroupError::Io {
                action: "write",
                path: file.to_owned(),
                source,
            };
        }
    };
    CgroupError::Delegation {
        path: dir.to_owned(),
        reason,
    }
}

fn write_if_present(path: &Path, value: &str) -> Result<(), CgroupError> {
    if path.exists() { write(path, value) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("memory.events");
        fs::write(&file, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n").expect("write");
        assert_eq!(read_counter(&file, "oom_kill"), 2);
        assert_eq!(read_counter(&file, "max"), 3);
        assert_eq!(read_counter(&file, "absent"), 0);
        assert_eq!(read_counter(&dir.path().join("missing"), "max"), 0);
    }

    #[test]
    fn the_layout_is_detected_from_the_files_present() {
        let v2 = tempfile::tempdir().expect("tempdir");
        fs::write(v2.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("write");
        assert_eq!(
            CgroupLayout::detect_at(v2.path()).expect("v2"),
            CgroupLayout::V2 {
                root: v2.path().to_owned()
            }
        );

        let hybrid = tempfile::tempdir().expect("tempdir");
        fs::write(hybrid.path().join("cgroup.controllers"), "").expect("write");
        for (dir, file) in [
            ("memory", "memory.limit_in_bytes"),
            ("cpu", "cpu.cfs_quota_us"),
            ("pids", "cgroup.procs"),
        ] {
            fs::create_dir(hybrid.path().join(dir)).expect("mkdir");
            fs::write(hybrid.path().join(dir).join(file), "").expect("write");
        }
        assert_eq!(CgroupLayout::detect_at(hybrid.path()).expect("v1").version(), 1);

        let none = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            CgroupLayout::detect_at(none.path()),
            Err(CgroupError::NoControllers(_))
        ));
    }

    /// A fake cgroup v2 tree in a tempdir. The kernel gives a new cgroup its interface files; the fake makes the
    /// ones whose presence the code checks (`memory.swap.max`, `cgroup.kill`) for the jail `name` beforehand.
    fn fake_v2(name: &str) -> (tempfile::TempDir, CgroupLayout, PathBuf) {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("write");
        fs::write(root.path().join("cgroup.subtree_control"), "").expect("write");
        let layout = CgroupLayout::detect_at(root.path()).expect("v2");
        let jail = root.path().join("hapnd").join(name);
        fs::create_dir_all(&jail).expect("mkdir");
        for file in ["memory.swap.max", "cgroup.kill"] {
            fs::write(jail.join(file), "").expect("write");
        }
        (root, layout, jail)
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    #[test]
    fn v2_the_parent_delegates_the_controllers_and_the_jail_gets_every_limit() {
        let (root, layout, jail) = fake_v2("jail-1");
        layout.prepare_parent("hapnd").expect("prepare the parent");
        assert_eq!(read(&root.path().join("cgroup.subtree_control")), "+memory +cpu +pids");
        assert_eq!(
            read(&root.path().join("hapnd/cgroup.subtree_control")),
            "+memory +cpu +pids"
        );

        let limits = Limits {
            memory_bytes: 128 << 20,
            cpu_millicores: 1500,
            pids: 32,
            ..Limits::default()
        };
        let cgroup = layout.create("hapnd", "jail-1", &limits).expect("create");
        assert_eq!(cgroup.dirs(), std::slice::from_ref(&jail));
        assert_eq!(cgroup.procs_files(), [jail.join("cgroup.procs")]);
        assert_eq!(read(&jail.join("memory.max")), (128_u64 << 20).to_string());
        assert_eq!(read(&jail.join("memory.swap.max")), "0", "no swap");
        assert_eq!(
            read(&jail.join("cpu.max")),
            "150000 100000",
            "1.5 cores: 150 ms per 100 ms period"
        );
        assert_eq!(read(&jail.join("pids.max")), "32");
    }

    #[test]
    fn v2_a_root_whose_controllers_are_already_enabled_is_left_alone() {
        let (root, layout, _) = fake_v2("jail-1");
        // As on a systemd host: the root already delegates these (and more); rewriting is not needed.
        let subtree = root.path().join("cgroup.subtree_control");
        fs::write(&subtree, "cpuset cpu io memory pids\n").expect("write");
        layout.prepare_parent("hapnd").expect("prepare the parent");
        assert_eq!(read(&subtree), "cpuset cpu io memory pids\n", "not written again");
        assert_eq!(
            read(&root.path().join("hapnd/cgroup.subtree_control")),
            "+memory +cpu +pids"
        );

        // Only some enabled: the missing ones are asked for.
        fs::write(&subtree, "cpu\n").expect("write");
        layout.prepare_parent("hapnd").expect("prepare the parent");
        assert_eq!(read(&subtree), "+memory +cpu +pids");
    }

    #[test]
    fn v2_a_refused_subtree_control_write_says_what_to_do_not_just_ebusy() {
        let dir = Path::new("/sys/fs/cgroup");
        let file = dir.join("cgroup.subtree_control");
        let error = subtree_control_error(dir, &file, std::io::Error::from_raw_os_error(libc::EBUSY));
        assert!(
            matches!(&error, CgroupError::Delegation { path, .. } if path == dir),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("has processes of its own"), "{message}");
        assert!(message.contains("Delegate=yes"), "{message}");
        assert!(!message.contains("busy"), "no raw errno: {message}");

        let error = subtree_control_error(dir, &file, std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(error.to_string().contains("not in cgroup.controllers"), "{error}");

        // Anything else keeps its cause and the file.
        let error = subtree_control_error(dir, &file, std::io::Error::from_raw_os_error(libc::EIO));
        assert!(
            matches!(&error, CgroupError::Io { path, .. } if *path == file),
            "{error:?}"
        );
    }

    #[test]
    fn v2_a_subtree_control_that_cannot_be_written_fails_prepare_parent_with_a_clear_error() {
        let (root, layout, _) = fake_v2("jail-1");
        // A directory where the file should be: the write fails, and prepare_parent reports it.
        let subtree = root.path().join("cgroup.subtree_control");
        fs::remove_file(&subtree).expect("rm");
        fs::create_dir(&subtree).expect("mkdir");
        let error = layout.prepare_parent("hapnd").expect_err("refused");
        assert!(error.to_string().contains("cgroup.subtree_control"), "{error}");
    }

    #[test]
    fn v2_kill_writes_cgroup_kill_and_events_are_read_from_the_v2_files() {
        let (_root, layout, jail) = fake_v2("jail-1");
        let cgroup = layout.create("hapnd", "jail-1", &Limits::default()).expect("create");
        assert!(cgroup.kill_all().expect("kill"), "cgroup.kill was used");
        assert_eq!(read(&jail.join("cgroup.kill")), "1");

        fs::write(jail.join("memory.events"), "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n").expect("write");
        fs::write(jail.join("pids.events"), "max 3\n").expect("write");
        assert_eq!(
            cgroup.events(),
            CgroupEvents {
                oom_kills: 1,
                pids_refused: 3
            }
        );

        // A kernel before 5.14 has no cgroup.kill: nothing is written, and the caller kills the init instead.
        fs::remove_file(jail.join("cgroup.kill")).expect("rm");
        assert!(!cgroup.kill_all().expect("kill"));
        assert!(!jail.join("cgroup.kill").exists(), "no file is made up");
    }

    #[test]
    fn v2_removal_deletes_the_jail_directory_and_tolerates_it_being_gone() {
        let (root, layout, jail) = fake_v2("jail-1");
        let cgroup = layout.create("hapnd", "jail-1", &Limits::default()).expect("create");
        // The kernel's interface files vanish with the directory; a fake has to take them away itself.
        for entry in fs::read_dir(&jail).expect("ls") {
            fs::remove_file(entry.expect("entry").path()).expect("rm");
        }
        cgroup.remove().expect("remove");
        assert!(!jail.exists());
        assert!(root.path().join("hapnd").exists(), "the parent stays for the next jail");
        cgroup.remove().expect("removing twice is fine");
    }

    #[test]
    fn v2_a_limit_that_cannot_be_set_fails_create_naming_the_file() {
        let (_root, layout, jail) = fake_v2("jail-1");
        // memory.max as a directory: the first limit fails (and the jail does not start without it).
        fs::create_dir(jail.join("memory.max")).expect("mkdir");
        fs::remove_file(jail.join("memory.swap.max")).expect("rm");
        fs::remove_file(jail.join("cgroup.kill")).expect("rm");
        let error = layout
            .create("hapnd", "jail-1", &Limits::default())
            .expect_err("refused");
        assert!(error.to_string().contains("memory.max"), "{error}");
    }

    #[test]
    fn v1_kill_all_leaves_the_killing_to_the_caller() {
        let cgroup = Cgroup {
            layout_is_v2: false,
            dirs: vec![PathBuf::from("/nonexistent/memory/x")],
        };
        assert!(!cgroup.kill_all().expect("nothing to do on v1"));
    }
}
