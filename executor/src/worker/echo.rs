//! The smallest worker that speaks the protocol: it answers every request with its body. `hapnd doctor` starts it in
//! a jail to prove the whole path (jail, handshake, round trip) works on a host; it needs nothing but its own binary.

use std::io::{Read, Write};

use serde_json::value::RawValue;

use super::protocol::{DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION};

/// The `argv[0]` a multi-call binary is started with to act as the echo worker.
pub const ECHO_WORKER_NAME: &str = "hapnd-echo-worker";

pub fn invoked_as_echo_worker() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|arg0| std::path::Path::new(&arg0).file_name() == Some(std::ffi::OsStr::new(ECHO_WORKER_NAME)))
}

#[derive(serde::Deserialize)]
struct Request<'a> {
    id: u64,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Serves requests on stdin/stdout until stdin closes; never returns.
pub fn main() -> ! {
    let code = match serve() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("echo worker: {error}");
            1
        }
    };
    std::process::exit(code)
}

fn serve() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let (mut input, mut output) = (stdin.lock(), stdout.lock());
    write_frame(
        &mut output,
        format!(r#"{{"type":"hello","protocol":{PROTOCOL_VERSION}}}"#).as_bytes(),
    )?;
    loop {
        let mut header = [0_u8; 4];
        match input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let length = u32::from_le_bytes(header);
        if length > DEFAULT_MAX_FRAME_BYTES {
            return Err(std::io::Error::other(format!(
                "a frame of {length} bytes is above the cap"
            )));
        }
        let mut payload = vec![0_u8; length as usize];
        input.read_exact(&mut payload)?;
        let request: Request<'_> = serde_json::from_slice(&payload).map_err(std::io::Error::other)?;
        let response = format!(
            r#"{{"type":"response","id":{},"ok":{}}}"#,
            request.id,
            request.body.get()
        );
        write_frame(&mut output, response.as_bytes())?;
    }
}

fn write_frame(output: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let length = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
    output.write_all(&length.to_le_bytes())?;
    output.write_all(payload)?;
    output.flush()
}
