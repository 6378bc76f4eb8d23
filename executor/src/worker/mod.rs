//! Long-lived jailed workers: the framed protocol ([`protocol`]), one worker ([`Worker`]) and the warm pool
//! ([`Pool`]).

pub mod echo;
pub mod pool;
mod process;
pub mod protocol;

pub use pool::{Pool, PoolConfig, PoolError, PooledWorker};
pub use process::{Answer, RequestId, Worker, WorkerConfig, WorkerError};
pub use protocol::ProtocolViolation;
