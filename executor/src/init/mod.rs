//! The jail's first process. The supervisor clones it into a new pid namespace and execs it with an empty
//! environment; it reads its [`protocol::InitSpec`] from the control socket, performs the setup steps of
//! `executor/JAIL.md` in order ([`steps::setup`]) and execs the jailed program. If a step fails it reports which one
//! on the control socket and exits, and the program never starts.

pub mod protocol;
pub mod steps;
pub mod sys;

mod landlock;
mod real;
mod rootfs;

use std::io::{Read, Write};
use std::os::fd::FromRawFd;

use self::protocol::{CONTROL_FD, InitFailure, InitSpec};

/// The `argv[0]` the init is started with.
pub const INIT_NAME: &str = "hapnd-sandbox-init";

/// Whether this process was started as the jail's init: multi-call binaries check this first thing in `main`.
pub fn invoked_as_init() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|arg0| std::path::Path::new(&arg0).file_name() == Some(std::ffi::OsStr::new(INIT_NAME)))
}

/// Exit status of an init whose setup failed (the failure itself went to the control socket).
pub const SETUP_FAILED_EXIT: i32 = 125;

/// Largest spec the init accepts.
const MAX_SPEC_BYTES: usize = 4 * 1024 * 1024;

/// The init's entry point; never returns.
pub fn main() -> ! {
    real::reset_signals();
    // SAFETY: the supervisor hands the control socket over as fd 3; this process owns it from here on.
    let mut control = unsafe { std::fs::File::from_raw_fd(CONTROL_FD) };
    let failure = match read_spec(&mut control) {
        Ok(spec) => {
            // The socket must close when exec succeeds: that is how the supervisor learns it did.
            // SAFETY: fcntl on a descriptor this process owns.
            unsafe { libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
            steps::setup(&spec, &mut real::RealSys)
        }
        Err(message) => InitFailure {
            step: "handshake".into(),
            message,
        },
    };
    if let Ok(report) = serde_json::to_vec(&failure) {
        let _ = control.write_all(&report);
    }
    std::process::exit(SETUP_FAILED_EXIT)
}

fn read_spec(control: &mut std::fs::File) -> Result<InitSpec, String> {
    let mut length = [0_u8; 4];
    control
        .read_exact(&mut length)
        .map_err(|e| format!("read the spec length: {e}"))?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_SPEC_BYTES {
        return Err(format!("spec of {length} bytes is larger than {MAX_SPEC_BYTES}"));
    }
    let mut bytes = vec![0; length];
    control
        .read_exact(&mut bytes)
        .map_err(|e| format!("read the spec: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("parse the spec: {e}"))
}
