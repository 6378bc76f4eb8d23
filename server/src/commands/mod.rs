//! One module per family of subcommands.

pub mod catalog;
pub mod serve;
