//! One module per family of subcommands.

pub mod catalog;
pub mod doctor;
pub mod sandbox;
pub mod serve;
