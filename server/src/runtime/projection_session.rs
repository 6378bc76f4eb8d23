//! A projection version running through the log in one worker (`projectBegin` … `projectEnd`, see
//! `dotnet-host/src/Hapnd.Worker/WorkerService.Projections.cs`): the worker keeps the states between batches, marks
//! what changed, and hands the changed states over at each flush, so the caller stores them with its checkpoint.
//!
//! The caller owns the stored states. A batch may answer [`BatchAnswer::Need`]: keys the worker does not hold and
//! that may be stored; the caller then sends them with [`ProjectionSession::send_resume`]. That cannot happen in a
//! *fresh* session (nothing stored) before the worker first lets states go at a flush, so only then may the caller
//! send batches ahead of their answers (pipelining): answers come back in order, and a `need` with a batch behind
//! it would stall the worker.

use std::collections::{BTreeMap, VecDeque};

use hapnd_executor::PooledWorker;
use serde::Serialize;
use serde_json::value::RawValue;

#[cfg(doc)]
use super::protocol::ProjectBatchResponse;
use super::protocol::{
    EncodedRows, ProjectBatchRequest, ProjectBatchResponse, ProjectBeginRequest, ProjectEndRequest,
    ProjectFlushRequest, ProjectFlushResponse, ProjectResumeRequest,
};
use super::workers::{ArtifactWorkers, Failure, WorkerKey, from_pool, from_user_error, from_worker};

/// What a batch (or its resumption) answered.
#[derive(Debug)]
pub enum BatchAnswer {
    /// The worker needs these keys' stored states before it runs the batch.
    Need(Vec<String>),
    Done(BatchDone),
}

#[derive(Debug, Default)]
pub struct BatchDone {
    /// Events with a key, applied.
    pub applied: u64,
    /// Events without a key.
    pub skipped: u64,
    /// States the worker holds now.
    pub resident: usize,
    /// With `record`: every state change in order, `(position, key, state)`.
    pub changes: Vec<(u64, String, Box<RawValue>)>,
    /// Where the batch's time went in the worker (see [`ProjectBatchResponse::timings_us`]).
    pub timings_us: BTreeMap<String, u64>,
}

/// What a flush handed over.
#[derive(Debug)]
pub struct Flushed {
    /// Every state changed since the flush before.
    pub states: BTreeMap<String, Box<RawValue>>,
    /// States the worker still holds (0 when it let them go).
    pub resident: usize,
}

/// One answer of the worker, in the order the requests went.
#[derive(Debug)]
pub enum SessionAnswer {
    Batch(BatchAnswer),
    Flushed(Flushed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    Begin,
    Batch,
    Flush,
    End,
}

/// A projection session: one worker held until [`ProjectionSession::end`]. A failure (user code threw, a timeout,
/// a crash) ends it: that call and every later one return it. A user exception's `event_index` counts the
/// session's events from its first, those without a key included. Dropped while open, it discards its worker.
pub struct ProjectionSession {
    worker: Option<PooledWorker<WorkerKey>>,
    owed: VecDeque<Owed>,
    open: bool,
    failed: Option<Failure>,
}

impl ArtifactWorkers {
    /// Opens a projection session in a worker of `key`; `fresh` when the version has no stored state.
    pub async fn projection_session(&self, key: &WorkerKey, fresh: bool) -> Result<ProjectionSession, Failure> {
        self.ensure_registered(key)?;
        let worker = self.pool.acquire(key).await.map_err(from_pool)?;
        let mut session = ProjectionSession {
            worker: Some(worker),
            owed: VecDeque::new(),
            open: true,
            failed: None,
        };
        session.send(&ProjectBeginRequest { fresh }, Owed::Begin).await?;
        Ok(session)
    }
}

impl ProjectionSession {
    /// Requests sent and not yet answered (the begin's included until an answer after it is read).
    pub fn in_flight(&self) -> usize {
        self.owed.len()
    }

    /// Sends the next events of the log (rows from [`EncodedRows::encode`], keys empty); `record` asks for every
    /// state change. The answer comes from [`ProjectionSession::receive`].
    pub async fn send_batch(&mut self, events: &EncodedRows, record: bool) -> Result<(), Failure> {
        self.send(&ProjectBatchRequest { record, events }, Owed::Batch).await
    }

    /// Gives a batch that answered [`BatchAnswer::Need`] the stored states it asked for (`None`: none stored).
    pub async fn send_resume(&mut self, states: BTreeMap<&str, Option<&RawValue>>) -> Result<(), Failure> {
        self.send(&ProjectResumeRequest { states }, Owed::Batch).await
    }

    /// Asks for every state changed since the last flush; more than `keep` resident, the worker then lets them go.
    pub async fn send_flush(&mut self, keep: usize) -> Result<(), Failure> {
        self.send(&ProjectFlushRequest { keep }, Owed::Flush).await
    }

    /// The oldest answer owed. Errors when nothing is owed but the begin.
    pub async fn receive(&mut self) -> Result<SessionAnswer, Failure> {
        loop {
            match self.take_answer().await? {
                Some(answer) => return Ok(answer),
                None if self.owed.is_empty() => {
                    return Err(self.fail(Failure::Protocol("nothing was asked of the session".into())));
                }
                None => {}
            }
        }
    }

    /// Closes the session and gives the worker back, once it answered everything.
    pub async fn end(mut self) -> Result<(), Failure> {
        self.ensure_not_failed()?;
        self.send(&ProjectEndRequest {}, Owed::End).await?;
        while !self.owed.is_empty() {
            self.take_answer().await?;
        }
        Ok(())
    }

    /// The worker's pid (tests kill it).
    pub fn pid(&self) -> Option<i32> {
        self.worker.as_ref().map(PooledWorker::pid)
    }

    fn ensure_not_failed(&self) -> Result<(), Failure> {
        match &self.failed {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    async fn send(&mut self, request: &(impl Serialize + Sync), owed: Owed) -> Result<(), Failure> {
        self.ensure_not_failed()?;
        let Some(worker) = self.worker.as_mut() else {
            return Err(self.fail(Failure::Protocol("the session's worker is gone".into())));
        };
        match worker.send(request).await {
            Ok(_) => {
                self.owed.push_back(owed);
                Ok(())
            }
            Err(error) => Err(self.fail(from_worker(error))),
        }
    }

    /// Reads the oldest answer owed: `None` for a begin's or an end's.
    async fn take_answer(&mut self) -> Result<Option<SessionAnswer>, Failure> {
        self.ensure_not_failed()?;
        let Some(&owed) = self.owed.front() else {
            return Err(self.fail(Failure::Protocol("no answer is owed".into())));
        };
        let Some(worker) = self.worker.as_mut() else {
            return Err(self.fail(Failure::Protocol("the session's worker is gone".into())));
        };
        let answer = match worker.receive().await {
            Ok((_, answer)) => answer,
            Err(error) => return Err(self.fail(from_worker(error))),
        };
        self.owed.pop_front();
        let ok = match answer {
            Ok(ok) => ok,
            Err(refused) => {
                // The worker ended the session with this answer; what it still owes is read so it can serve again.
                self.open = false;
                let failure = from_user_error(refused);
                self.drain().await;
                return Err(self.fail(failure));
            }
        };
        let unreadable = |e: serde_json::Error| Failure::Protocol(format!("an answer that cannot be read: {e}"));
        match owed {
            Owed::Begin => Ok(None),
            Owed::End => {
                self.open = false;
                Ok(None)
            }
            Owed::Batch => match serde_json::from_str::<ProjectBatchResponse>(ok.get()) {
                Ok(ProjectBatchResponse { need: Some(keys), .. }) => {
                    Ok(Some(SessionAnswer::Batch(BatchAnswer::Need(keys))))
                }
                Ok(done) => Ok(Some(SessionAnswer::Batch(BatchAnswer::Done(BatchDone {
                    applied: done.applied,
                    skipped: done.skipped,
                    resident: done.resident,
                    changes: done.changes,
                    timings_us: done.timings_us,
                })))),
                Err(e) => Err(self.fail(unreadable(e))),
            },
            Owed::Flush => match serde_json::from_str::<ProjectFlushResponse>(ok.get()) {
                Ok(flushed) => Ok(Some(SessionAnswer::Flushed(Flushed {
                    states: flushed.states,
                    resident: flushed.resident,
                }))),
                Err(e) => Err(self.fail(unreadable(e))),
            },
        }
    }

    /// Reads and drops the answers still owed; a worker that fails meanwhile is gone (the executor killed it).
    async fn drain(&mut self) {
        while !self.owed.is_empty() {
            let Some(worker) = self.worker.as_mut() else { return };
            if worker.receive().await.is_err() {
                return;
            }
            self.owed.pop_front();
        }
    }

    fn fail(&mut self, failure: Failure) -> Failure {
        self.failed = Some(failure.clone());
        failure
    }
}

impl Drop for ProjectionSession {
    fn drop(&mut self) {
        // A worker that may still hold the session's states (or owes answers) must not serve anyone else.
        if let Some(worker) = self.worker.take()
            && (self.open || !self.owed.is_empty())
        {
            worker.discard();
        }
    }
}
