//! One jailed worker process speaking the framed protocol: started and greeted ([`Worker::start`]), then asked one
//! request at a time ([`Worker::call`]) under the spec's per-request deadline. Any failure other than a user error
//! leaves the worker broken; its jail is killed and reaped and the caller starts another.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::Mutex;

use super::protocol::{
    self, DEFAULT_MAX_FRAME_BYTES, FrameError, Hello, PROTOCOL_VERSION, ProtocolViolation, Response, UserError,
};
use crate::sandbox::{Jail, Outcome, Sandbox, SandboxError};
use crate::spawn::StdioMode;
use crate::spec::SandboxSpec;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub max_frame_bytes: u32,
    /// How long a new worker may take to say hello (runtime start included).
    pub handshake_timeout: Duration,
    /// How much of the worker's standard error is kept (the end of it) for error reports.
    pub stderr_tail_bytes: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            handshake_timeout: Duration::from_secs(10),
            stderr_tail_bytes: 16 * 1024,
        }
    }
}

/// Why a worker could not answer. Except for [`WorkerError::Start`], the worker is gone afterwards.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("start the worker: {0}")]
    Start(#[from] SandboxError),
    #[error("the request took longer than {0:?}; the worker was killed")]
    Timeout(Duration),
    #[error("the worker ran out of memory and was killed")]
    OutOfMemory,
    #[error("the worker died ({outcome:?}): {stderr}")]
    Crashed { outcome: Outcome, stderr: String },
    #[error("the worker broke the protocol: {0}")]
    Protocol(ProtocolViolation),
    #[error("the worker is broken by an earlier failure")]
    Broken,
    #[error("the worker refused its setup: {}: {}", .0.kind, .0.message)]
    Setup(UserError),
}

/// The answer to one request: the worker's `ok` value, or the error the user's code raised.
pub type Answer = Result<Box<RawValue>, UserError>;

#[derive(Debug)]
pub struct Worker {
    jail: Option<Jail>,
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    stderr: Arc<Mutex<Vec<u8>>>,
    config: WorkerConfig,
    request_timeout: Duration,
    next_id: u64,
    /// The request written but not yet answered. Set while a call runs; still set afterwards only when the
    /// caller's future was dropped mid-request, and then the worker's next frame would be that request's stale
    /// answer: such a worker is not healthy and must not serve again.
    in_flight: Option<u64>,
    served: u64,
    pid: i32,
    /// The last request's frame, kept for its allocation.
    frame: Vec<u8>,
}

impl Worker {
    /// Starts `spec` in a jail and waits for the worker's hello.
    pub async fn start(sandbox: &Arc<Sandbox>, spec: SandboxSpec, config: WorkerConfig) -> Result<Self, WorkerError> {
        let request_timeout = spec.limits.request_timeout;
        let mut jail = sandbox.start_async(spec, [StdioMode::Piped; 3]).await?;
        let missing = || WorkerError::Protocol(ProtocolViolation::NotPiped);
        let stdin = jail.take_stdin()?.ok_or_else(missing)?;
        let stdout = jail.take_stdout()?.ok_or_else(missing)?;
        let stderr_stream = jail.take_stderr()?.ok_or_else(missing)?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(drain_stderr(stderr_stream, stderr.clone(), config.stderr_tail_bytes));
        let pid = jail.pid().unwrap_or(0);
        let mut worker = Worker {
            jail: Some(jail),
            stdin,
            stdout,
            stderr,
            config,
            request_timeout,
            next_id: 0,
            in_flight: None,
            frame: Vec::new(),
            served: 0,
            pid,
        };
        let hello = tokio::time::timeout(
            worker.config.handshake_timeout,
            protocol::read_frame(&mut worker.stdout, worker.config.max_frame_bytes),
        )
        .await;
        let hello = match hello {
            Err(_) => {
                let waited = worker.config.handshake_timeout;
                return Err(worker
                    .fail(WorkerError::Protocol(ProtocolViolation::NoHello { waited }))
                    .await);
            }
            Ok(Err(error)) => return Err(worker.fail_from_frame(error).await),
            Ok(Ok(payload)) => payload,
        };
        match protocol::parse::<Hello>(&hello) {
            Ok(Hello { protocol }) if protocol == PROTOCOL_VERSION => Ok(worker),
            Ok(Hello { protocol }) => Err(worker
                .fail(WorkerError::Protocol(ProtocolViolation::WrongVersion {
                    worker: protocol,
                    supervisor: PROTOCOL_VERSION,
                }))
                .await),
            Err(error) => Err(worker.fail_from_frame(error).await),
        }
    }

    /// The worker's pid in the supervisor's namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The jail's cgroup directories, while the worker runs.
    pub fn cgroup_dirs(&self) -> Vec<std::path::PathBuf> {
        self.jail.as_ref().map(|j| j.cgroup_dirs().to_vec()).unwrap_or_default()
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Whether the worker can take another request: it runs, and no earlier request was left unanswered.
    pub fn is_healthy(&self) -> bool {
        self.jail.is_some() && self.in_flight.is_none()
    }

    /// Sends one request and waits for its answer, at most the spec's request timeout.
    ///
    /// Dropping the future before it completes leaves the request in flight: the worker is then unhealthy, and a
    /// later call kills it and fails with [`WorkerError::Broken`] rather than take the stale answer for its own.
    pub async fn call(&mut self, body: &(impl Serialize + ?Sized)) -> Result<Answer, WorkerError> {
        if self.jail.is_none() {
            return Err(WorkerError::Broken);
        }
        if let Some(abandoned) = self.in_flight {
            tracing::warn!(
                pid = self.pid,
                request = abandoned,
                "a worker still owes an abandoned request; killing it"
            );
            return Err(self.fail(WorkerError::Broken).await);
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut request = std::mem::take(&mut self.frame);
        protocol::encode_request(&mut request, id, body).map_err(|error| match error {
            FrameError::TooLarge { length, cap } => WorkerError::Protocol(ProtocolViolation::TooLarge { length, cap }),
            FrameError::Garbage(detail) => WorkerError::Protocol(ProtocolViolation::Garbage(detail)),
            other => WorkerError::Protocol(ProtocolViolation::Garbage(other.to_string())),
        })?;
        self.in_flight = Some(id);
        let exchange = async {
            protocol::write_encoded(&mut self.stdin, &request).await?;
            protocol::read_frame(&mut self.stdout, self.config.max_frame_bytes).await
        };
        let exchanged = tokio::time::timeout(self.request_timeout, exchange).await;
        self.frame = request;
        let payload = match exchanged {
            Err(_) => return Err(self.fail(WorkerError::Timeout(self.request_timeout)).await),
            Ok(Err(error)) => return Err(self.fail_from_frame(error).await),
            Ok(Ok(payload)) => payload,
        };
        let response: Response = match protocol::parse(&payload) {
            Ok(response) => response,
            Err(error) => return Err(self.fail_from_frame(error).await),
        };
        if response.id != id {
            let violation = ProtocolViolation::WrongId {
                asked: id,
                answered: response.id,
            };
            return Err(self.fail(WorkerError::Protocol(violation)).await);
        }
        self.in_flight = None;
        let answer = match (response.ok, response.error) {
            (Some(ok), None) => Ok(ok),
            (None, Some(error)) => Err(error),
            _ => {
                let violation = ProtocolViolation::AmbiguousResponse;
                return Err(self.fail(WorkerError::Protocol(violation)).await);
            }
        };
        self.served += 1;
        Ok(answer)
    }

    /// Ends the worker: kills its jail and waits for it to be gone.
    pub async fn shutdown(mut self) {
        if let Some(jail) = self.jail.take() {
            jail.kill();
            if let Err(error) = jail.wait().await {
                tracing::warn!(%error, "reap a worker");
            }
        }
    }

    /// A closed or broken stream: the worker died (find out how) or sent something unreadable.
    async fn fail_from_frame(&mut self, error: FrameError) -> WorkerError {
        match error {
            FrameError::Closed | FrameError::Truncated | FrameError::Io(_) => {
                let Some(jail) = self.jail.take() else {
                    return WorkerError::Broken;
                };
                // The process may still be finishing its exit; give it a moment, then make sure.
                let ended = match tokio::time::timeout(Duration::from_secs(1), jail.wait_for_exit()).await {
                    Ok(()) => jail.wait().await,
                    Err(_) => {
                        jail.kill();
                        jail.wait().await
                    }
                };
                let stderr = self.stderr_tail().await;
                match ended {
                    Ok(ended) if ended.outcome == Outcome::OutOfMemory => WorkerError::OutOfMemory,
                    Ok(ended) if matches!(error, FrameError::Truncated) && ended.outcome == Outcome::Exited(0) => {
                        WorkerError::Protocol(ProtocolViolation::Truncated)
                    }
                    Ok(ended) => WorkerError::Crashed {
                        outcome: ended.outcome,
                        stderr,
                    },
                    Err(wait) => WorkerError::Protocol(ProtocolViolation::Unexplained {
                        stream: error.to_string(),
                        wait: wait.to_string(),
                    }),
                }
            }
            FrameError::TooLarge { length, cap } => {
                self.fail(WorkerError::Protocol(ProtocolViolation::TooLarge { length, cap }))
                    .await
            }
            FrameError::Garbage(detail) => {
                self.fail(WorkerError::Protocol(ProtocolViolation::Garbage(detail)))
                    .await
            }
        }
    }

    /// Kills the worker's jail and reports `error`.
    async fn fail(&mut self, error: WorkerError) -> WorkerError {
        if let Some(jail) = self.jail.take() {
            jail.kill();
            match jail.wait().await {
                Ok(ended) if ended.outcome == Outcome::OutOfMemory && matches!(error, WorkerError::Timeout(_)) => {
                    return WorkerError::OutOfMemory;
                }
                Ok(_) => {}
                Err(wait) => tracing::warn!(%wait, "reap a failed worker"),
            }
        }
        error
    }

    async fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().await).into_owned()
    }
}

/// Keeps reading the worker's standard error so it never blocks on a full pipe, keeping only the last `keep` bytes.
async fn drain_stderr(mut stream: pipe::Receiver, tail: Arc<Mutex<Vec<u8>>>, keep: usize) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut tail = tail.lock().await;
                tail.extend_from_slice(&buffer[..n]);
                if tail.len() > keep {
                    let excess = tail.len() - keep;
                    tail.drain(..excess);
                }
            }
        }
    }
}
