//! Step 4: the jail's root filesystem, the equivalent of a minimal container image built from host paths.
//!
//! The technique is bubblewrap's: a small tmpfs becomes the root first (`pivot_root` onto it), so the host's tree is
//! still reachable at `/oldroot` while the jail's root is assembled at `/newroot` from read-only binds, a scratch
//! tmpfs, a fresh `/proc` and a handful of device nodes. Then the host's tree is detached, `/newroot` becomes `/`, and
//! `/` is made read-only. Binds are not recursive: a mount below a listed path stays invisible unless listed too.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use super::protocol::RootPlan;

/// Where the host's tree and the jail's root hang while the root is assembled. The base tmpfs goes on `/tmp` of the
/// jail's own mount namespace; the host's `/tmp` is untouched and still reachable at `/oldroot/tmp`.
const BASE: &str = "/tmp";
const OLD_ROOT: &str = "/oldroot";
const NEW_ROOT: &str = "/newroot";

/// Device nodes every program expects; bound from the host, so they are the real ones.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

pub fn build(plan: &RootPlan, uid: u32, gid: u32) -> Result<(), String> {
    // Nothing mounted from here on may propagate back to the host's namespace.
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    mount(
        Some("tmpfs"),
        BASE,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=64k,mode=0755"),
    )?;
    make_dir(&format!("{BASE}{OLD_ROOT}"))?;
    make_dir(&format!("{BASE}{NEW_ROOT}"))?;
    pivot_root(BASE, &format!("{BASE}{OLD_ROOT}"))?;
    chdir("/")?;

    mount(
        Some("tmpfs"),
        NEW_ROOT,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=1m,mode=0755"),
    )?;
    // Parents before children, so that a read-only path inside the scratch dir (or the reverse) stays visible.
    let mut mounts: Vec<(&Path, bool)> = plan.read_only.iter().map(|p| (p.as_path(), false)).collect();
    mounts.push((plan.scratch.as_path(), true));
    mounts.sort_by_key(|(path, _)| path.components().count());
    for (path, is_scratch) in mounts {
        if is_scratch {
            mount_scratch(path, plan.scratch_bytes, uid, gid)?;
        } else {
            bind_read_only(path)?;
        }
    }
    let proc = format!("{NEW_ROOT}/proc");
    make_dir(&proc)?;
    // A proc of the jail's own pid namespace: it shows the jail's processes only.
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    build_dev()?;

    // The host's tree goes away for good, then the new root becomes `/`: `pivot_root(".", ".")` stacks the old root
    // on top of the new one, and detaching it leaves only the new one.
    umount_detach(OLD_ROOT)?;
    chdir(NEW_ROOT)?;
    pivot_root(".", ".")?;
    umount_detach(".")?;
    chdir("/")?;
    mount(
        None,
        "/",
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    Ok(())
}

fn mount_scratch(path: &Path, bytes: u64, uid: u32, gid: u32) -> Result<(), String> {
    let scratch = inside_new_root(path)?;
    make_dirs(&scratch)?;
    mount(
        Some("tmpfs"),
        &scratch,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(&format!("size={bytes},mode=0700,uid={uid},gid={gid}")),
    )
}

fn bind_read_only(path: &Path) -> Result<(), String> {
    let source = inside(OLD_ROOT, path)?;
    let target = inside_new_root(path)?;
    let metadata = fs::metadata(&source).map_err(|e| format!("read-only path {}: {e}", path.display()))?;
    if metadata.is_dir() {
        make_dirs(&target)?;
    } else {
        if let Some(parent) = Path::new(&target).parent() {
            make_dirs(&parent.to_string_lossy())?;
        }
        fs::write(&target, b"").map_err(|e| format!("create mount point {target}: {e}"))?;
    }
    mount(Some(&source), &target, None, libc::MS_BIND, None)?;
    // A bind keeps the source's flags; read-only, no set-uid and no devices come from a second, remounting call.
    mount(
        None,
        &target,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
}

fn build_dev() -> Result<(), String> {
    let dev = format!("{NEW_ROOT}/dev");
    make_dir(&dev)?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )?;
    for device in DEVICES {
        let target = format!("{dev}/{device}");
        fs::write(&target, b"").map_err(|e| format!("create {target}: {e}"))?;
        mount(
            Some(&format!("{OLD_ROOT}/dev/{device}")),
            &target,
            None,
            libc::MS_BIND,
            None,
        )?;
        mount(
            None,
            &target,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NOEXEC,
            None,
        )?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, format!("{dev}/{link}")).map_err(|e| format!("link /dev/{link}: {e}"))?;
    }
    mount(
        None,
        &dev,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
        None,
    )
}

/// `path` (absolute, no `..`) placed under `root`.
fn inside(root: &str, path: &Path) -> Result<String, String> {
    let mut joined = PathBuf::from(root);
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    for component in components {
        match component {
            Component::Normal(part) => joined.push(part),
            _ => return Err(format!("{} must not contain `.` or `..`", path.display())),
        }
    }
    Ok(joined.to_string_lossy().into_owned())
}

fn inside_new_root(path: &Path) -> Result<String, String> {
    inside(NEW_ROOT, path)
}

fn make_dir(path: &str) -> Result<(), String> {
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("mkdir {path}: {e}")),
    }
}

fn make_dirs(path: &str) -> Result<(), String> {
    fs::DirBuilder::new()
        .mode(0o755)
        .recursive(true)
        .create(path)
        .map_err(|e| format!("mkdir -p {path}: {e}"))
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} contains a NUL byte"))
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("{} contains a NUL byte", path.display()))
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let source_c = source.map(c_string).transpose()?;
    let target_c = c_string(target)?;
    let fstype_c = fstype.map(c_string).transpose()?;
    let data_c = data.map(c_string).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source_c),
            target_c.as_ptr(),
            ptr(&fstype_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "mount {} on {target} (flags {flags:#x}): {}",
            source.unwrap_or("-"),
            std::io::Error::last_os_error()
        ))
    }
}

fn pivot_root(new_root: &str, put_old: &str) -> Result<(), String> {
    let new_c = c_string(new_root)?;
    let old_c = c_string(put_old)?;
    // SAFETY: both pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, new_c.as_ptr(), old_c.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "pivot_root {new_root} {put_old}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

fn umount_detach(target: &str) -> Result<(), String> {
    let target_c = c_string(target)?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::umount2(target_c.as_ptr(), libc::MNT_DETACH) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("detach {target}: {}", std::io::Error::last_os_error()))
    }
}

pub(super) fn chdir(path: &str) -> Result<(), String> {
    chdir_path(Path::new(path))
}

pub(super) fn chdir_path(path: &Path) -> Result<(), String> {
    let path_c = c_path(path)?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::chdir(path_c.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("chdir {}: {}", path.display(), std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_placed_under_a_root_and_must_be_plain_absolute() {
        assert_eq!(
            inside("/newroot", Path::new("/usr/lib")).as_deref(),
            Ok("/newroot/usr/lib")
        );
        assert!(inside("/newroot", Path::new("usr/lib")).is_err());
        assert!(inside("/newroot", Path::new("/usr/../etc")).is_err());
        assert!(
            inside("/newroot", Path::new("/usr/./lib")).is_ok(),
            "`.` is dropped by components()"
        );
    }
}
