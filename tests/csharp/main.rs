//! The C# side end to end, through the real jail: hostile uploads refused by the jailed compiler with the expected
//! diagnostic (`tests/hostile/`), legitimate ones compiled and run by the jailed worker to the expected state
//! (`tests/legit/`), misbehaving ones contained with a typed failure while the pool keeps serving
//! (`tests/containment/`), and signatures checked on both sides of the pipe.

mod containment;
#[path = "../shared/dotnet_build.rs"]
mod dotnet_build;
mod hostile;
mod legit;
mod replay;
mod signatures;
mod support;
