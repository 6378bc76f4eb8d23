//! A projection version running through the log in one worker (`projectBegin` … `projectEnd`, see
//! `dotnet-host/src/Hapnd.Worker/WorkerService.Projections.cs`): the worker keeps the states between batches, marks
//! what changed, and hands the changed states over at each flush, so the caller stores them with its checkpoint.
//!
//! The caller owns the stored states. A batch may answer [`BatchAnswer::Need`]: keys the worker does not hold and
//! that may be stored; the caller then sends them with [`ProjectionSession::send_resume`]. That cannot happen in a
//! *fresh* session (nothing stored) before the worker first lets states go at a flush, so only then may the caller
//! send batches ahead of their answers (pipelining): answers come back in order, and a `need` with a batch behind
//! it would stall the worker.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::protocol::{
    EncodedRows, ProjectBatchRequest, ProjectBatchResponse, ProjectBeginRequest, ProjectEndRequest,
    ProjectFlushRequest, ProjectFlushResponse, ProjectResumeRequest,
};
use super::session_worker::SessionWorker;
use super::workers::{ArtifactWorkers, Failure, WorkerKey, from_pool};

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
    worker: SessionWorker<Owed>,
}

impl ArtifactWorkers {
    /// Opens a projection session in a worker of `key`; `fresh` when the version has no stored state.
    pub async fn projection_session(&self, key: &WorkerKey, fresh: bool) -> Result<ProjectionSession, Failure> {
        self.ensure_registered(key)?;
        let worker = self.pool.acquire(key).await.map_err(from_pool)?;
        let mut session = ProjectionSession {
            worker: SessionWorker::new(worker),
        };
        session.worker.send(&ProjectBeginRequest { fresh }, Owed::Begin).await?;
        Ok(session)
    }
}

impl ProjectionSession {
    /// Requests sent and not yet answered (the begin's included until an answer after it is read).
    pub fn in_flight(&self) -> usize {
        self.worker.in_flight()
    }

    /// Sends the next events of the log (rows from [`EncodedRows::encode`], keys empty); `record` asks for every
    /// state change. The answer comes from [`ProjectionSession::receive`].
    pub async fn send_batch(&mut self, events: &EncodedRows, record: bool) -> Result<(), Failure> {
        self.worker
            .send(&ProjectBatchRequest { record, events }, Owed::Batch)
            .await
    }

    /// Gives a batch that answered [`BatchAnswer::Need`] the stored states it asked for (`None`: none stored).
    pub async fn send_resume(&mut self, states: BTreeMap<&str, Option<&RawValue>>) -> Result<(), Failure> {
        self.worker.send(&ProjectResumeRequest { states }, Owed::Batch).await
    }

    /// Asks for every state changed since the last flush; more than `keep` resident, the worker then lets them go.
    pub async fn send_flush(&mut self, keep: usize) -> Result<(), Failure> {
        self.worker.send(&ProjectFlushRequest { keep }, Owed::Flush).await
    }

    /// The oldest answer owed other than the begin's. Errors when nothing else is owed.
    pub async fn receive(&mut self) -> Result<SessionAnswer, Failure> {
        loop {
            match self.take_answer().await? {
                Some(answer) => return Ok(answer),
                None if self.worker.in_flight() == 0 => {
                    return Err(self
                        .worker
                        .fail(Failure::Protocol("nothing was asked of the session".into())));
                }
                None => {}
            }
        }
    }

    /// Closes the session and gives the worker back, once it answered everything.
    pub async fn end(mut self) -> Result<(), Failure> {
        self.worker.send(&ProjectEndRequest {}, Owed::End).await?;
        while self.worker.in_flight() > 0 {
            self.take_answer().await?;
        }
        Ok(())
    }

    /// Reads the oldest answer owed: `None` for a begin's or an end's.
    async fn take_answer(&mut self) -> Result<Option<SessionAnswer>, Failure> {
        let (owed, ok) = self.worker.receive().await?;
        let unreadable = |e: serde_json::Error| Failure::Protocol(format!("an answer that cannot be read: {e}"));
        match owed {
            Owed::Begin => Ok(None),
            Owed::End => {
                self.worker.closed();
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
                Err(e) => Err(self.worker.fail(unreadable(e))),
            },
            Owed::Flush => match serde_json::from_str::<ProjectFlushResponse>(ok.get()) {
                Ok(flushed) => Ok(Some(SessionAnswer::Flushed(Flushed {
                    states: flushed.states,
                    resident: flushed.resident,
                }))),
                Err(e) => Err(self.worker.fail(unreadable(e))),
            },
        }
    }
}
