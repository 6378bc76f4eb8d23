//! One worker held for a session (a replay, a projection version): requests sent ahead of their answers, each answer
//! taken with what it was owed for, and the worker never given back while it may hold the session's states or owes
//! answers.
//!
//! A failure ends the session: that call and every later one return it. After an error answer (the worker ended
//! the session itself) the answers still owed are read, so the worker can serve again and goes back to the pool.
//! Dropped while open or owing answers (a cancelled caller), the session discards its worker.

use std::collections::VecDeque;

use hapnd_executor::PooledWorker;
use serde::Serialize;
use serde_json::value::RawValue;

use super::workers::{Failure, WorkerKey, from_user_error, from_worker};

pub(super) struct SessionWorker<O> {
    worker: Option<PooledWorker<WorkerKey>>,
    /// What each answer the worker owes is for, oldest first.
    owed: VecDeque<O>,
    /// Whether the worker may hold the session's states: until the end's answer or an error answer.
    open: bool,
    failed: Option<Failure>,
}

impl<O: Copy> SessionWorker<O> {
    pub fn new(worker: PooledWorker<WorkerKey>) -> Self {
        SessionWorker {
            worker: Some(worker),
            owed: VecDeque::new(),
            open: true,
            failed: None,
        }
    }

    /// Requests sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.owed.len()
    }

    pub fn ensure_not_failed(&self) -> Result<(), Failure> {
        match &self.failed {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    pub async fn send(&mut self, request: &(impl Serialize + Sync), owed: O) -> Result<(), Failure> {
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

    /// The oldest answer owed, with what it was owed for.
    pub async fn receive(&mut self) -> Result<(O, Box<RawValue>), Failure> {
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
        match answer {
            Ok(ok) => Ok((owed, ok)),
            Err(refused) => {
                self.open = false;
                let failure = from_user_error(refused);
                self.drain().await;
                Err(self.fail(failure))
            }
        }
    }

    /// The worker answered the session's end: it holds nothing of it any more.
    pub fn closed(&mut self) {
        self.open = false;
    }

    /// Records the session's failure and returns it.
    pub fn fail(&mut self, failure: Failure) -> Failure {
        self.failed = Some(failure.clone());
        failure
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
}

impl<O> Drop for SessionWorker<O> {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take()
            && (self.open || !self.owed.is_empty())
        {
            worker.discard();
        }
    }
}
