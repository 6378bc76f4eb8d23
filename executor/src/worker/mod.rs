//! Long-lived jailed workers: the framed protocol ([`protocol`]), one worker ([`Worker`]) and the warm pool
//! ([`Pool`]).

pub mod pool;
pub mod protocol;
mod process;

pub use pool::{Pool, PoolConfig, PoolError};
pub use process::{Answer, Worker, WorkerConfig, WorkerError};
