//! Gathers the writes SQLite makes to a WAL file into few large writes, and decides when they must reach the file.
//!
//! SQLite writes each WAL frame with two calls, its 24-byte header and then its page, so a commit of 30 pages costs
//! 60 `pwrite`s, each paying the system call, the file's lock and the page cache's per-call work. Frames go to
//! consecutive offsets, so they can be held in memory and written in one call. This module is the pure part of that
//! (no FFI, no file): [`WriteCoalescer`] gathers writes for a [`Sink`]; `wal_vfs` feeds it from SQLite.
//!
//! The rules, each needed for one reason:
//! - **Every byte reaches the file before it can be read.** The owner flushes before any read, size, truncate,
//!   sync or file-control call on the file, and before the wal-index header is published (`xShmBarrier`), after
//!   which other connections read the new frames through their own descriptors.
//! - **A commit's errors are reported by the write that makes it.** A frame header with a non-zero "database size
//!   after commit" field marks a commit frame. The write of such a header flushes everything gathered so far, and
//!   the write after it (the commit frame's page) goes to the file at once. So if the disk refuses the commit, that
//!   `xWrite` fails and SQLite rolls the transaction back: a failure is never discovered only at the barrier, which
//!   cannot report one. The same holds when SQLite rewrites a commit header in place (`walRewriteChecksums`).
//! - **Writes keep their order.** A write that does not continue the gathered run (an overwrite of an earlier frame,
//!   the WAL header at offset 0 after a rewind) flushes the run first.
//! - **Memory stays bounded.** A run never grows past [`MAX_RUN_BYTES`]; a larger write goes straight through.
//!
//! A failed flush drops the gathered bytes: they belonged to the transaction the failure aborts, which SQLite
//! writes again from its own pages if it retries.

/// Where gathered writes go: the real file.
pub trait Sink {
    type Error;
    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), Self::Error>;
}

/// Longest run of gathered bytes: the most SQLite's unix VFS writes in one call (`seekAndWriteFd` masks the length
/// with `0x1ffff`, as SQLite itself never writes more than a 64 KiB page), about 31 frames of 4 KiB pages.
pub const MAX_RUN_BYTES: usize = 0x1ffff;

/// A WAL frame header: page number, database size after commit (0 if not a commit frame), salts, checksums.
const FRAME_HEADER_BYTES: usize = 24;

#[derive(Debug, Default)]
pub struct WriteCoalescer {
    run: Vec<u8>,
    /// File offset of `run[0]`.
    start: u64,
    /// The last write was a commit frame's header: the next one goes to the file at once.
    after_commit_header: bool,
}

impl WriteCoalescer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one write of SQLite's; returns the sink's error if this write had to reach the file and could not.
    pub fn write<S: Sink>(&mut self, sink: &mut S, bytes: &[u8], offset: u64) -> Result<(), S::Error> {
        let commit_header = is_commit_frame_header(bytes);
        let write_now = commit_header || self.after_commit_header;
        self.after_commit_header = commit_header;
        let continues_run = !self.run.is_empty() && offset == self.end();
        if continues_run && self.run.len() + bytes.len() <= MAX_RUN_BYTES {
            self.run.extend_from_slice(bytes);
            return if write_now { self.flush(sink) } else { Ok(()) };
        }
        self.flush(sink)?;
        if write_now || bytes.len() > MAX_RUN_BYTES {
            return sink.write_at(bytes, offset);
        }
        self.start = offset;
        self.run.extend_from_slice(bytes);
        Ok(())
    }

    /// Writes what is gathered to the sink.
    pub fn flush<S: Sink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        if self.run.is_empty() {
            return Ok(());
        }
        let result = sink.write_at(&self.run, self.start);
        self.run.clear();
        result
    }

    /// Bytes gathered and not yet written.
    pub fn pending(&self) -> usize {
        self.run.len()
    }

    fn end(&self) -> u64 {
        self.start + self.run.len() as u64
    }
}

/// Whether `bytes` is a WAL frame header marking a commit. Only frame headers are 24 bytes long (the WAL header is
/// 32, pages are at least 512); reading something else as one would only flush early.
fn is_commit_frame_header(bytes: &[u8]) -> bool {
    bytes.len() == FRAME_HEADER_BYTES && bytes[4..8] != [0; 4]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A file in memory that can be told to refuse writes.
    #[derive(Default)]
    struct MemoryFile {
        bytes: Vec<u8>,
        writes: usize,
        refuse: bool,
    }

    impl Sink for MemoryFile {
        type Error = &'static str;
        fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), Self::Error> {
            if self.refuse {
                return Err("disk full");
            }
            self.writes += 1;
            let offset = offset as usize;
            if self.bytes.len() < offset + bytes.len() {
                self.bytes.resize(offset + bytes.len(), 0);
            }
            self.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
            Ok(())
        }
    }

    const PAGE: usize = 4096;
    const FRAME: usize = FRAME_HEADER_BYTES + PAGE;

    fn header(page: u32, commit_size: u32) -> [u8; FRAME_HEADER_BYTES] {
        let mut header = [0xAB; FRAME_HEADER_BYTES];
        header[0..4].copy_from_slice(&page.to_be_bytes());
        header[4..8].copy_from_slice(&commit_size.to_be_bytes());
        header
    }

    /// Writes one frame as SQLite does, header then page, at frame index `index` (after a 32-byte WAL header).
    fn write_frame(
        coalescer: &mut WriteCoalescer,
        file: &mut MemoryFile,
        index: usize,
        commit: bool,
    ) -> Result<(), &'static str> {
        let offset = (32 + index * FRAME) as u64;
        let page = vec![index as u8; PAGE];
        coalescer.write(file, &header(index as u32 + 1, u32::from(commit) * 9), offset)?;
        coalescer.write(file, &page, offset + FRAME_HEADER_BYTES as u64)
    }

    #[test]
    fn a_commit_of_many_frames_reaches_the_file_in_two_writes() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        coalescer.write(&mut file, &[7; 32], 0).expect("write");
        for index in 0..29 {
            write_frame(&mut coalescer, &mut file, index, false).expect("write");
        }
        assert_eq!(file.writes, 0, "nothing before the commit frame");
        write_frame(&mut coalescer, &mut file, 29, true).expect("write");
        assert_eq!(coalescer.pending(), 0, "a commit leaves nothing gathered");
        assert_eq!(file.writes, 2, "the run up to the commit header, then the commit page");
        assert_eq!(file.bytes.len(), 32 + 30 * FRAME);
        assert_eq!(file.bytes[32 + 29 * FRAME + FRAME_HEADER_BYTES], 29);
    }

    #[test]
    fn a_refused_commit_fails_the_write_that_makes_it() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        write_frame(&mut coalescer, &mut file, 0, false).expect("write");
        file.refuse = true;
        let offset = (32 + FRAME) as u64;
        assert_eq!(coalescer.write(&mut file, &header(2, 9), offset), Err("disk full"));
        assert_eq!(coalescer.pending(), 0, "the aborted transaction's bytes are dropped");
        assert_eq!(
            coalescer.write(&mut file, &[1; PAGE], offset + FRAME_HEADER_BYTES as u64),
            Err("disk full"),
            "the commit page goes to the file at once, so its failure is seen too"
        );
    }

    #[test]
    fn a_rewritten_commit_header_reaches_the_file_without_a_page_after_it() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        for index in 0..3 {
            write_frame(&mut coalescer, &mut file, index, index == 2).expect("write");
        }
        let writes = file.writes;
        // walRewriteChecksums: reads (the owner flushes), then rewrites headers in place, the last a commit's.
        coalescer.write(&mut file, &header(1, 0), 32).expect("write");
        coalescer
            .write(&mut file, &header(3, 9), (32 + 2 * FRAME) as u64)
            .expect("write");
        assert_eq!(coalescer.pending(), 0);
        assert_eq!(file.writes, writes + 2);
    }

    #[test]
    fn a_write_behind_the_run_goes_after_it() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        coalescer.write(&mut file, &[1; PAGE], 0).expect("write");
        coalescer.write(&mut file, &[2; PAGE], PAGE as u64).expect("write");
        coalescer.write(&mut file, &[3; PAGE], 0).expect("write");
        coalescer.flush(&mut file).expect("write");
        assert_eq!(&file.bytes[..PAGE], &[3; PAGE][..]);
        assert_eq!(&file.bytes[PAGE..], &[2; PAGE][..]);
    }

    #[test]
    fn runs_stay_bounded() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        for index in 0..300 {
            write_frame(&mut coalescer, &mut file, index, false).expect("write");
            assert!(coalescer.pending() <= MAX_RUN_BYTES);
        }
        coalescer
            .write(&mut file, &vec![5; MAX_RUN_BYTES + 1], 1 << 30)
            .expect("write");
        assert_eq!(
            file.bytes.len(),
            (1 << 30) + MAX_RUN_BYTES + 1,
            "an oversized write goes straight through"
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Write { offset: u16, len: u16, commit_header: bool },
        Flush,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..64u16, 1..2048u16, any::<bool>()).prop_map(|(slot, len, commit_header)| {
                if commit_header {
                    Step::Write { offset: slot * 24, len: 24, commit_header }
                } else {
                    Step::Write { offset: slot * 512, len, commit_header }
                }
            }),
            1 => Just(Step::Flush),
        ]
    }

    proptest! {
        /// After a flush, the file holds exactly what writing every call straight through would have left.
        #[test]
        fn flushed_bytes_equal_straight_writes(steps in proptest::collection::vec(step(), 1..80)) {
            let mut coalescer = WriteCoalescer::new();
            let mut file = MemoryFile::default();
            let mut straight = MemoryFile::default();
            for (n, step) in steps.iter().enumerate() {
                match *step {
                    Step::Write { offset, len, commit_header } => {
                        let bytes = if commit_header {
                            header(n as u32, 1).to_vec()
                        } else {
                            vec![n as u8; usize::from(len)]
                        };
                        coalescer.write(&mut file, &bytes, u64::from(offset)).expect("write");
                        straight.write_at(&bytes, u64::from(offset)).expect("write");
                    }
                    Step::Flush => {
                        coalescer.flush(&mut file).expect("write");
                        prop_assert_eq!(&file.bytes, &straight.bytes);
                    }
                }
            }
            coalescer.flush(&mut file).expect("write");
            prop_assert_eq!(&file.bytes, &straight.bytes);
        }
    }
}
