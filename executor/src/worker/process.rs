//! One jailed worker process speaking the framed protocol: started and greeted ([`Worker::start`]), then asked
//! requests under the spec's per-request deadline, one at a time ([`Worker::call`]) or pipelined ([`Worker::send`]
//! and [`Worker::receive`]: the next request is written while the worker runs the current one, answers come back in
//! order). Any failure other than a user error leaves the worker broken; its jail is killed and reaped and the
//! caller starts another.
//!
//! A request's frame is written straight into the pipe when the pipe has room (the common case: the worker reads a
//! whole frame before it runs it). What does not fit is handed to a writer task, so a caller waiting for an answer
//! never blocks the worker's input, and the worker's input never waits for the caller.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{Mutex, mpsc};

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
    /// Most requests sent and not yet answered ([`Worker::send`]); each holds its frame until it is written.
    pub max_in_flight: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            handshake_timeout: Duration::from_secs(10),
            stderr_tail_bytes: 16 * 1024,
            max_in_flight: 4,
        }
    }
}

/// Why a worker could not answer. Except for [`WorkerError::Start`], [`WorkerError::TooManyInFlight`] and
/// [`WorkerError::NothingInFlight`] (the caller's mistakes, which leave the worker as it was), the worker is gone
/// afterwards.
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
    #[error("{limit} requests are already awaiting their answers")]
    TooManyInFlight { limit: usize },
    #[error("no request is awaiting an answer")]
    NothingInFlight,
}

/// A request written with [`Worker::send`]: its id, which [`Worker::receive`] gives back with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The answer to one request: the worker's `ok` value, or the error the user's code raised.
pub type Answer = Result<Box<RawValue>, UserError>;

#[derive(Debug)]
pub struct Worker {
    jail: Option<Jail>,
    stdin: Arc<pipe::Sender>,
    stdout: pipe::Receiver,
    stderr: Arc<Mutex<Vec<u8>>>,
    config: WorkerConfig,
    request_timeout: Duration,
    next_id: u64,
    /// The requests written but not yet answered, oldest first. Empty between calls; left non-empty by a caller
    /// that pipelines ([`Worker::send`]) or whose future was dropped mid-request, and then the worker's next frames
    /// are those requests' answers: such a worker must not go back to a pool.
    in_flight: VecDeque<InFlight>,
    /// Set while an answer is being read: still set when a reader was dropped half-way, and then the stream stands
    /// inside a frame and the worker cannot serve again.
    reading: bool,
    /// When the last answer arrived: the worker starts a pipelined request only once it answered the one before.
    last_answer: Instant,
    served: u64,
    pid: i32,
    /// The last request's frame, kept for its allocation.
    frame: Vec<u8>,
    /// Writes what did not fit in the pipe, in order; started the first time it is needed.
    writer: Option<Writer>,
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    sent: Instant,
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
            stdin: Arc::new(stdin),
            stdout,
            stderr,
            config,
            request_timeout,
            next_id: 0,
            in_flight: VecDeque::new(),
            reading: false,
            last_answer: Instant::now(),
            frame: Vec::new(),
            served: 0,
            pid,
            writer: None,
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

    /// Whether the worker can go back to a pool: it runs, and it owes no answer.
    pub fn is_healthy(&self) -> bool {
        self.jail.is_some() && self.in_flight.is_empty() && !self.reading && !self.writer_broke()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Sends one request and waits for its answer, at most the spec's request timeout.
    ///
    /// Only with nothing in flight: a worker that owes earlier answers (a dropped call, or requests sent with
    /// [`Worker::send`] and not received) is killed and the call fails with [`WorkerError::Broken`] rather than
    /// take another request's answer for its own. Dropping the future before it completes leaves the request in
    /// flight, with the same effect on the next call.
    pub async fn call(&mut self, body: &(impl Serialize + ?Sized)) -> Result<Answer, WorkerError> {
        if self.jail.is_none() {
            return Err(WorkerError::Broken);
        }
        if let Some(abandoned) = self.in_flight.front().map(|r| r.id) {
            tracing::warn!(
                pid = self.pid,
                request = abandoned,
                "a worker still owes an abandoned request; killing it"
            );
            return Err(self.fail(WorkerError::Broken).await);
        }
        self.send(body).await?;
        self.receive().await.map(|(_, answer)| answer)
    }

    /// Writes one request and returns at once with its id, while the worker may still be running earlier ones:
    /// the caller prepares the next request meanwhile and takes the answers with [`Worker::receive`], in order.
    /// At most `max_in_flight` requests may await their answers ([`WorkerError::TooManyInFlight`] beyond).
    ///
    /// The frame is in the pipe, or queued for the writer task, when this returns: only the encoding and a
    /// non-blocking write happen here, so a dropped future leaves either nothing sent or the request in flight.
    pub async fn send(&mut self, body: &(impl Serialize + ?Sized)) -> Result<RequestId, WorkerError> {
        if self.jail.is_none() {
            return Err(WorkerError::Broken);
        }
        if self.reading || self.writer_broke() {
            tracing::warn!(pid = self.pid, "a worker's stream was left inside a frame; killing it");
            return Err(self.fail(WorkerError::Broken).await);
        }
        let limit = self.config.max_in_flight.max(1);
        if self.in_flight.len() >= limit {
            return Err(WorkerError::TooManyInFlight { limit });
        }
        let mut request = std::mem::take(&mut self.frame);
        if request.capacity() == 0
            && let Some(spare) = self.writer.as_ref().and_then(Writer::take_spare)
        {
            request = spare;
        }
        let id = self.next_id + 1;
        protocol::encode_request(&mut request, id, body).map_err(|error| match error {
            FrameError::TooLarge { length, cap } => WorkerError::Protocol(ProtocolViolation::TooLarge { length, cap }),
            FrameError::Garbage(detail) => WorkerError::Protocol(ProtocolViolation::Garbage(detail)),
            other => WorkerError::Protocol(ProtocolViolation::Garbage(other.to_string())),
        })?;
        self.next_id = id;
        let written = match self.write_now(&request) {
            Ok(written) => written,
            Err(error) => {
                self.frame = request;
                return Err(self.fail_from_frame(FrameError::Io(error)).await);
            }
        };
        let sent = Instant::now();
        self.in_flight.push_back(InFlight { id, sent });
        if written == request.len() {
            self.frame = request;
        } else {
            self.writer().queue(request, written);
        }
        Ok(RequestId(id))
    }

    /// Waits for the answer to the oldest request in flight ([`Worker::send`]), at most the spec's request
    /// timeout from when the worker could start it: its sending, or the arrival of the answer before it, whichever
    /// came later (the worker runs one request at a time, so a request queued behind another is not charged for
    /// it; an answer read late only lengthens the next one's allowance, never shortens it). A timeout kills the
    /// worker with every request it still had.
    ///
    /// Dropping the future before it completes leaves the worker unable to serve again (its stream may stand
    /// inside a frame): the next call kills it.
    pub async fn receive(&mut self) -> Result<(RequestId, Answer), WorkerError> {
        if self.jail.is_none() {
            return Err(WorkerError::Broken);
        }
        if self.reading || self.writer_broke() {
            tracing::warn!(pid = self.pid, "a worker's stream was left inside a frame; killing it");
            return Err(self.fail(WorkerError::Broken).await);
        }
        let Some(oldest) = self.in_flight.front() else {
            return Err(WorkerError::NothingInFlight);
        };
        let id = oldest.id;
        let deadline = oldest.sent.max(self.last_answer) + self.request_timeout;
        self.reading = true;
        let read = tokio::time::timeout_at(
            deadline.into(),
            protocol::read_frame(&mut self.stdout, self.config.max_frame_bytes),
        )
        .await;
        self.reading = false;
        let payload = match read {
            Err(_) => return Err(self.fail(WorkerError::Timeout(self.request_timeout)).await),
            Ok(Err(error)) => return Err(self.fail_from_frame(error).await),
            Ok(Ok(payload)) => payload,
        };
        self.last_answer = Instant::now();
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
        let answer = match (response.ok, response.error) {
            (Some(ok), None) => Ok(ok),
            (None, Some(error)) => Err(error),
            _ => {
                let violation = ProtocolViolation::AmbiguousResponse;
                return Err(self.fail(WorkerError::Protocol(violation)).await);
            }
        };
        self.in_flight.pop_front();
        self.served += 1;
        Ok((RequestId(id), answer))
    }

    /// Writes as much of `frame` as the pipe takes without waiting, unless earlier frames are still queued (they
    /// go first). Returns how many bytes were written.
    fn write_now(&self, frame: &[u8]) -> std::io::Result<usize> {
        if self.writer.as_ref().is_some_and(Writer::busy) {
            return Ok(0);
        }
        let mut written = 0;
        while written < frame.len() {
            match self.stdin.try_write(&frame[written..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(written)
    }

    fn writer(&mut self) -> &Writer {
        self.writer
            .get_or_insert_with(|| Writer::start(self.stdin.clone(), self.pid))
    }

    /// Whether the writer task ended with a frame half-written (a write failed, or its runtime went away).
    fn writer_broke(&self) -> bool {
        self.writer
            .as_ref()
            .is_some_and(|w| w.shared.broken.load(Ordering::Acquire))
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

/// The writer task of one worker: frames that did not fit in the pipe at once, written in order while the caller
/// does something else (waits for an answer, prepares the next request).
#[derive(Debug)]
struct Writer {
    queue: mpsc::UnboundedSender<(Vec<u8>, usize)>,
    shared: Arc<WriterShared>,
}

#[derive(Debug, Default)]
struct WriterShared {
    /// Frames queued and not yet fully written: while there are any, new frames queue behind them.
    queued: AtomicUsize,
    /// The task ended with a frame not (fully) written, because a write failed or its runtime went away: the
    /// worker's input stands inside a frame, or lacks one.
    broken: AtomicBool,
    /// The last written frame's buffer, for a later request's allocation.
    spare: std::sync::Mutex<Option<Vec<u8>>>,
}

impl Writer {
    fn start(stdin: Arc<pipe::Sender>, pid: i32) -> Writer {
        let (queue, mut frames) = mpsc::unbounded_channel::<(Vec<u8>, usize)>();
        let shared = Arc::new(WriterShared::default());
        let task = shared.clone();
        tokio::spawn(async move {
            let mut done = DoneOrBroken {
                shared: &task,
                done: true,
            };
            while let Some((frame, mut written)) = frames.recv().await {
                done.done = false;
                while written < frame.len() {
                    let wrote = match stdin.writable().await {
                        Ok(()) => stdin.try_write(&frame[written..]),
                        Err(error) => Err(error),
                    };
                    match wrote {
                        Ok(0) => {
                            tracing::debug!(pid, "a worker's input took no bytes");
                            return;
                        }
                        Ok(n) => written += n,
                        Err(error)
                            if matches!(
                                error.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                            ) => {}
                        Err(error) => {
                            // The worker is gone or closed its input: its reader finds out how it ended.
                            tracing::debug!(pid, %error, "write to a worker");
                            return;
                        }
                    }
                }
                done.done = true;
                *task.spare.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(frame);
                task.queued.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Writer { queue, shared }
    }

    /// Whether frames are queued: a new one must wait its turn.
    fn busy(&self) -> bool {
        self.shared.queued.load(Ordering::Acquire) > 0
    }

    /// Queues the rest of `frame`, from byte `written` on.
    fn queue(&self, frame: Vec<u8>, written: usize) {
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if self.queue.send((frame, written)).is_err() {
            self.shared.broken.store(true, Ordering::Release);
        }
    }

    fn take_spare(&self) -> Option<Vec<u8>> {
        self.shared
            .spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// Marks the worker's input broken when the writer task ends (or is dropped) with a frame unwritten.
struct DoneOrBroken<'a> {
    shared: &'a WriterShared,
    done: bool,
}

impl Drop for DoneOrBroken<'_> {
    fn drop(&mut self) {
        if !self.done || self.shared.queued.load(Ordering::Acquire) > 0 {
            self.shared.broken.store(true, Ordering::Release);
        }
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
