//! The jail's first process (see `JAIL.md`). Started only by the executor, never by hand.

fn main() {
    hapnd_executor::init::main()
}
