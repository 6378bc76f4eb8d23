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
                write(&root.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
                let dir = root.join(parent);
                make_dir(&dir)?;
                write(&dir.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
            }
        }
        Ok(())
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
            write(&memory_dir.join("memory.limit_in_bytes"), &memory)?;
            // memsw (memory + swap) exists only with swap accounting; equal to the memory limit it forbids swap.
            write_if_present(&memory_dir.join("memory.memsw.limit_in_bytes"), &memory)?;
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

    /// Kills every process in the cgroup at once (v2 only; on v1 the caller kills the pid namespace's init).
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        if self.layout_is_v2 {
            write_if_present(&self.dirs[0].join("cgroup.kill"), "1")?;
        }
        Ok(())
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
}
