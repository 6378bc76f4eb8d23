//! The seam's real side: the system calls behind each jail step. Runs only in the init process, which is freshly
//! exec'd and single-threaded, so allocating and using `std` here is safe.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use caps::CapSet;

use super::protocol::{BpfInstruction, ExecPlan, Rlimit, RootPlan};
use super::sys::{Sys, SysResult};
use super::{landlock, rootfs};

#[derive(Debug, Default)]
pub struct RealSys;

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

impl Sys for RealSys {
    fn new_session(&mut self, keep: &[RawFd]) -> SysResult {
        // SAFETY: setsid takes no arguments; it fails only for a process group leader, which a cloned child is not.
        if unsafe { libc::setsid() } < 0 {
            return Err(os_error("setsid"));
        }
        close_all_but(keep)
    }

    fn join_cgroup(&mut self, cgroup_procs: &[&Path]) -> SysResult {
        for procs in cgroup_procs {
            // "0" is the writing process itself, whatever its pid in this namespace.
            std::fs::write(procs, b"0").map_err(|e| format!("join cgroup {}: {e}", procs.display()))?;
        }
        Ok(())
    }

    fn unshare_namespaces(&mut self, flags: i32, hostname: &str) -> SysResult {
        // SAFETY: unshare only reads its flags.
        if unsafe { libc::unshare(flags) } < 0 {
            return Err(os_error("unshare"));
        }
        // SAFETY: the pointer and length describe `hostname`, which outlives the call.
        if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } < 0 {
            return Err(os_error("sethostname"));
        }
        Ok(())
    }

    fn build_root(&mut self, plan: &RootPlan, uid: u32, gid: u32) -> SysResult {
        rootfs::build(plan, uid, gid)
    }

    fn set_rlimits(&mut self, limits: &[Rlimit]) -> SysResult {
        for limit in limits {
            let value = libc::rlimit {
                rlim_cur: limit.soft,
                rlim_max: limit.hard,
            };
            // SAFETY: `value` is a valid rlimit that outlives the call.
            if unsafe { libc::setrlimit(limit.resource, &value) } < 0 {
                return Err(os_error(&format!("setrlimit {}", limit.resource)));
            }
        }
        Ok(())
    }

    fn drop_privileges(&mut self, uid: u32, gid: u32) -> SysResult {
        // The bounding set first: dropping from it needs CAP_SETPCAP, which goes with the uid change below. Every
        // number up to 63, not only the capabilities this build knows: the kernel may know more.
        for cap in 0..64 {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(os_error(&format!("drop capability {cap} from the bounding set")));
            }
        }
        // Inheritable and ambient capabilities survive a uid change unless cleared.
        caps::clear(None, CapSet::Inheritable).map_err(|e| format!("clear inheritable capabilities: {e}"))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| format!("clear ambient capabilities: {e}"))?;
        // SAFETY: a zero-length group list with a null pointer clears the supplementary groups.
        if unsafe { libc::setgroups(0, std::ptr::null()) } < 0 {
            return Err(os_error("setgroups"));
        }
        // SAFETY: plain integer arguments.
        if unsafe { libc::setresgid(gid, gid, gid) } < 0 {
            return Err(os_error("setresgid"));
        }
        // SAFETY: plain integer arguments. Leaving uid 0 (without KEEPCAPS) empties the permitted and effective sets.
        if unsafe { libc::setresuid(uid, uid, uid) } < 0 {
            return Err(os_error("setresuid"));
        }
        for set in [
            CapSet::Effective,
            CapSet::Permitted,
            CapSet::Inheritable,
            CapSet::Ambient,
            CapSet::Bounding,
        ] {
            let left = caps::read(None, set).map_err(|e| format!("read {set:?} capabilities: {e}"))?;
            if !left.is_empty() {
                return Err(format!("{set:?} capabilities remain after the uid change: {left:?}"));
            }
        }
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: three valid out-pointers.
        if unsafe { libc::getresuid(&mut r, &mut e, &mut s) } < 0 || [r, e, s] != [uid; 3] {
            return Err(format!("uid is {r}/{e}/{s} after setting {uid}"));
        }
        Ok(())
    }

    fn set_no_new_privs(&mut self) -> SysResult {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
            return Err(os_error("PR_SET_NO_NEW_PRIVS"));
        }
        Ok(())
    }

    fn restrict_landlock(&mut self, plan: &RootPlan) -> SysResult {
        landlock::restrict(plan)
    }

    fn install_seccomp(&mut self, filters: &[Vec<BpfInstruction>]) -> SysResult {
        for (index, filter) in filters.iter().enumerate() {
            let mut program: Vec<libc::sock_filter> = filter
                .iter()
                .map(|i| libc::sock_filter {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect();
            let len = u16::try_from(program.len()).map_err(|_| format!("seccomp filter {index} is too long"))?;
            let fprog = libc::sock_fprog {
                len,
                filter: program.as_mut_ptr(),
            };
            // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies the filter.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if rc < 0 {
                return Err(os_error(&format!("install seccomp filter {index}")));
            }
        }
        Ok(())
    }

    fn exec(&mut self, plan: &ExecPlan) -> SysResult {
        rootfs::chdir_path(&plan.cwd)?;
        let program = c_bytes(plan.program.as_os_str().as_bytes())?;
        let argv0 = match &plan.argv0 {
            Some(name) => c_bytes(name.as_bytes())?,
            None => program.clone(),
        };
        let args = std::iter::once(Ok(argv0))
            .chain(plan.args.iter().map(|a| c_bytes(a.as_bytes())))
            .collect::<Result<Vec<_>, _>>()?;
        let env = plan
            .env
            .iter()
            .map(|(k, v)| c_bytes(format!("{k}={v}").as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        reset_signals();
        // SAFETY: program, argv and envp are NUL-terminated strings and null-terminated arrays that outlive the call.
        unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Err(os_error(&format!("execve {}", plan.program.display())))
    }
}

fn c_bytes(bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{:?} contains a NUL byte", String::from_utf8_lossy(bytes)))
}

/// Closes every descriptor except `keep`.
fn close_all_but(keep: &[RawFd]) -> SysResult {
    let mut keep: Vec<u32> = keep.iter().filter_map(|fd| u32::try_from(*fd).ok()).collect();
    keep.sort_unstable();
    let mut from = 0_u32;
    for fd in keep.iter().copied().chain(std::iter::once(u32::MAX)) {
        if fd > from {
            // SAFETY: close_range only closes descriptors; none of those in [from, fd) is used by this process.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
            if rc < 0 {
                return Err(os_error("close_range"));
            }
        }
        from = fd.saturating_add(1);
    }
    Ok(())
}

/// Default dispositions and an empty signal mask: both survive `execve`, and the supervisor's runtime may have
/// changed them (Rust ignores SIGPIPE, for one).
pub fn reset_signals() {
    for signal in 1..libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: SIG_DFL is always a valid disposition; errors for invalid numbers are ignored on purpose.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
    // SAFETY: an empty, initialised set passed by pointer.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}
