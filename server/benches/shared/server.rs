//! The real `hapnd serve` for the benches: started on a temporary data dir and `127.0.0.1:0` with the flags a bench
//! gives, its address and the default tenant's key read from its stdout, stopped with SIGTERM. Shared with
//! `#[path = "shared/server.rs"] mod server;`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tempfile::TempDir;

/// The binary under test.
pub const HAPND: &str = env!("CARGO_BIN_EXE_hapnd");
/// How long a start or a stop may take.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);

/// A running `hapnd serve` on a temporary data dir; dropping it kills the process.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub key: String,
    dir: TempDir,
    exited: bool,
}

impl Server {
    /// `hapnd serve --data-dir TMP --listen 127.0.0.1:0` plus `extra`; only these flags configure it (the
    /// environment's `HAPND_*` variables are removed).
    pub fn start<S: AsRef<OsStr>>(extra: &[S]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir().context("create a temporary dir")?;
        let log = File::create(dir.path().join("hapnd.log")).context("create the server log")?;
        let mut command = Command::new(HAPND);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // Only the flags above configure the server, not the environment the bench happens to run in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HAPND_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().with_context(|| format!("start {HAPND}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            key: String::new(),
            dir,
            exited: false,
        };

        // Reads stdout for the life of the process, so the server never writes into a full or closed pipe.
        let (lines, printed) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            let line = printed
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|_| anyhow!("hapnd did not print its address; its log:\n{}", server.log_tail()))?;
            if let Some(key) = line.strip_prefix("default tenant api key: ") {
                server.key = key.trim().to_owned();
            } else if let Some(addr) = line.strip_prefix("listening on http://") {
                server.addr = addr
                    .trim()
                    .parse()
                    .with_context(|| format!("parse the address in {line:?}"))?;
                break;
            }
        }
        if server.key.is_empty() {
            bail!("hapnd printed no default tenant api key");
        }
        Ok(server)
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("the pid does not fit pid_t")?;
        // SAFETY: kill(2) with a valid signal on our own child, which is not reaped yet, so the pid is still its.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("send SIGTERM to hapnd: {}", std::io::Error::last_os_error());
        }
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().context("wait for hapnd")? {
                self.exited = true;
                if !status.success() {
                    bail!("hapnd exited with {status}; its log:\n{}", self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("hapnd did not exit after SIGTERM; its log:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's data dir.
    #[allow(dead_code)]
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// The server's whole log so far.
    #[allow(dead_code)]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hapnd.log")).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("hapnd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
