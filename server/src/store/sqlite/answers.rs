//! Hands a committed group's answers to the waiting requests from inside the async runtime.
//!
//! Completing a waiting request wakes a runtime worker. Done from the syncer's or the writer's own thread, each wake is
//! a futex call after which the kernel tends to run the woken worker on that CPU at once, so on a small machine a
//! group's answers trickled out one per request round trip (about 100 µs apart), and the next fsync waited for the
//! last of them. Sending the whole group to one task costs a single wake; the task completes the requests from inside
//! the runtime, where a wake is a push onto a run queue.

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::writer::Reply;
use crate::store::{AppendError, AppendOutcome};

pub(super) type Answer = (Reply, Result<AppendOutcome, AppendError>);

#[derive(Clone)]
pub(super) struct AnswerSender(mpsc::UnboundedSender<Vec<Answer>>);

impl AnswerSender {
    /// Starts the delivering task on `runtime`; it ends when every sender is dropped.
    pub fn spawn(runtime: &Handle) -> Self {
        let (sender, mut groups) = mpsc::unbounded_channel::<Vec<Answer>>();
        runtime.spawn(async move {
            while let Some(group) = groups.recv().await {
                answer_now(group);
            }
        });
        AnswerSender(sender)
    }

    pub fn deliver(&self, group: Vec<Answer>) {
        // Without the task (the runtime is shutting down) the answers go out from this thread.
        if let Err(mpsc::error::SendError(group)) = self.0.send(group) {
            answer_now(group);
        }
    }
}

fn answer_now(group: Vec<Answer>) {
    for (reply, answer) in group {
        // The client may have gone away; the events are stored either way.
        let _ = reply.send(answer);
    }
}
