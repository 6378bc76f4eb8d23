//! Gathers the writes SQLite makes to a WAL file into few large writes, and decides when they must reach the file.
//!
//! SQLite writes each WAL frame with two calls, its 24-byte header and then its page, so a commit of 30 pages costs
//! 60 `pwrite`s, each paying the system call, the file's lock and the page cache's per-call work. Frames go to
//! consecutive offsets, so they can be held in memory and written in one call. This module is the pure part of that
//! (no FFI, no file): [`WriteCoalescer`] gathers writes for a [`Sink`]; `wal_vfs` feeds it from SQLite and says
//! when to flush.
//!
//! The rules, each needed for one reason:
//! - **Every byte reaches the file before it can be read.** The owner flushes before any read, size, truncate,
//!   sync or file-control call on the file, and before the wal-index header is published (`xShmBarrier`), after
//!   which other connections read the new frames through their own descriptors.
//! - **A commit's errors are reported by the writes that make it.** A frame header (a 24-byte write where a frame
//!   starts) with a non-zero "database size after commit" field marks a commit frame. Its write flushes everything gathered before it and goes to the file
//!   itself, and so does every write after it up to the next frame header that is not a commit's: the commit
//!   frame's page, padding frames (copies of the commit frame) and the parts SQLite splits a write into at a sync
//!   point. So if the disk refuses a commit, one of its `xWrite`s fails and SQLite rolls the transaction back; when
//!   a commit returns, nothing of it is left gathered, and a barrier, which cannot report an error, finds nothing
//!   to write. The same holds when SQLite rewrites a commit header in place (`walRewriteChecksums`).
//! - **A failed flush keeps its bytes.** A flush can fail inside a call that SQLite may treat as less than fatal
//!   (a read, say, after which it rolls back only a statement and later commits the rest of the transaction), so
//!   the gathered bytes stay and are written again by the next flush; until one succeeds, every flush, and so every
//!   commit, fails. A refused write itself leaves nothing behind.
//! - **Writes keep their order.** A write that does not continue the gathered run (an overwrite of an earlier frame,
//!   the WAL header at offset 0 after a rewind) flushes the run first.
//! - **Memory stays bounded.** A run never grows past [`MAX_RUN_BYTES`].
//!
//! What a transaction that rolls back leaves gathered is flushed by the owner before the write lock is released (or,
//! if that fails, discarded: it belongs to no commit), so it can never land on frames a later writer commits.

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
/// The WAL header at offset 0; its bytes 8..12 are the page size.
const WAL_HEADER_BYTES: usize = 32;

#[derive(Debug, Default)]
pub struct WriteCoalescer {
    run: Vec<u8>,
    /// File offset of `run[0]`.
    start: u64,
    /// Since a commit frame's header: writes go to the file at once, up to the next header that is not a commit's.
    writing_through: bool,
    /// Bytes of one frame (header and page) once known, from the WAL header or from a header and the page after
    /// it: a 24-byte write is a frame header only where a frame starts (SQLite may split a page write in two at a
    /// sync point, and a piece can be 24 bytes long).
    frame_bytes: Option<u64>,
    /// Where the page of the last frame header written starts.
    page_expected_at: Option<u64>,
    /// The end of the furthest write so far, and how many writes began before it.
    furthest: u64,
    overwrites: u64,
    commit_headers: u64,
}

impl WriteCoalescer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one write of SQLite's; returns the sink's error if this write had to reach the file and could not.
    pub fn write<S: Sink>(&mut self, sink: &mut S, bytes: &[u8], offset: u64) -> Result<(), S::Error> {
        self.learn_frame_size(bytes, offset);
        if bytes.len() == FRAME_HEADER_BYTES && self.starts_frame(offset) {
            self.writing_through = is_commit_frame_header(bytes);
            self.commit_headers += u64::from(self.writing_through);
            self.page_expected_at = Some(offset + FRAME_HEADER_BYTES as u64);
        }
        if offset < self.furthest {
            self.overwrites += 1;
        }
        self.furthest = self.furthest.max(offset + bytes.len() as u64);
        let continues_run = !self.run.is_empty() && offset == self.end();
        if continues_run && self.run.len() + bytes.len() <= MAX_RUN_BYTES {
            let kept = self.run.len();
            self.run.extend_from_slice(bytes);
            if !self.writing_through {
                return Ok(());
            }
            // A refused write leaves nothing behind; what was gathered before it stays for the next flush.
            let flushed = self.flush(sink);
            if flushed.is_err() {
                self.run.truncate(kept);
            }
            return flushed;
        }
        self.flush(sink)?;
        if self.writing_through || bytes.len() > MAX_RUN_BYTES {
            return sink.write_at(bytes, offset);
        }
        self.start = offset;
        self.run.extend_from_slice(bytes);
        Ok(())
    }

    /// Writes what is gathered to the sink; on failure keeps it, to be written by the next flush.
    pub fn flush<S: Sink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        if self.run.is_empty() {
            return Ok(());
        }
        sink.write_at(&self.run, self.start)?;
        self.run.clear();
        Ok(())
    }

    /// Forgets what is gathered.
    pub fn discard(&mut self) {
        self.run.clear();
    }

    /// Bytes gathered and not yet written.
    pub fn pending(&self) -> usize {
        self.run.len()
    }

    /// Writes that began before the end of an earlier one: in-place overwrites of frames, checksum rewrites, the
    /// WAL header of a rewound log.
    pub fn overwrites(&self) -> u64 {
        self.overwrites
    }

    /// Commit frame headers written: a commit's own, and its padding frames'.
    pub fn commit_headers(&self) -> u64 {
        self.commit_headers
    }

    fn end(&self) -> u64 {
        self.start + self.run.len() as u64
    }

    fn learn_frame_size(&mut self, bytes: &[u8], offset: u64) {
        let page = if offset == 0 && bytes.len() == WAL_HEADER_BYTES {
            u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
        } else if self.page_expected_at.take() == Some(offset) {
            bytes.len()
        } else {
            return;
        };
        if page.is_power_of_two() && (512..=65_536).contains(&page) {
            self.frame_bytes = Some((FRAME_HEADER_BYTES + page) as u64);
        }
    }

    fn starts_frame(&self, offset: u64) -> bool {
        match self.frame_bytes {
            Some(frame) => {
                offset >= WAL_HEADER_BYTES as u64 && (offset - WAL_HEADER_BYTES as u64).is_multiple_of(frame)
            }
            None => true,
        }
    }
}

/// Whether `bytes`, a frame header, marks a commit.
fn is_commit_frame_header(bytes: &[u8]) -> bool {
    bytes[4..8] != [0; 4]
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

    fn frame_offset(index: usize) -> u64 {
        (32 + index * FRAME) as u64
    }

    /// Writes one frame as SQLite does, header then page, at frame index `index` (after a 32-byte WAL header).
    fn write_frame(
        coalescer: &mut WriteCoalescer,
        file: &mut MemoryFile,
        index: usize,
        commit: bool,
    ) -> Result<(), &'static str> {
        let offset = frame_offset(index);
        coalescer.write(file, &header(index as u32 + 1, u32::from(commit) * 9), offset)?;
        coalescer.write(file, &vec![index as u8; PAGE], offset + FRAME_HEADER_BYTES as u64)
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
        assert_eq!(coalescer.overwrites(), 0);
    }

    #[test]
    fn a_refused_commit_fails_its_write_keeps_what_came_before_and_leaves_nothing_of_itself() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        write_frame(&mut coalescer, &mut file, 0, false).expect("write");
        file.refuse = true;
        assert_eq!(
            coalescer.write(&mut file, &header(2, 9), frame_offset(1)),
            Err("disk full")
        );
        assert_eq!(
            coalescer.pending(),
            FRAME,
            "the earlier frame is kept, the refused header is not"
        );
        // SQLite rolls the transaction back and, once the disk is back, writes it again from its first frame.
        file.refuse = false;
        write_frame(&mut coalescer, &mut file, 0, false).expect("write");
        write_frame(&mut coalescer, &mut file, 1, true).expect("write");
        assert_eq!(coalescer.pending(), 0);
        assert_eq!(file.bytes.len(), 32 + 2 * FRAME);
        assert_eq!(
            &file.bytes[32 + FRAME..32 + FRAME + FRAME_HEADER_BYTES],
            &header(2, 9)[..]
        );
        assert_eq!(&file.bytes[32 + FRAME + FRAME_HEADER_BYTES..], &[1; PAGE][..]);
    }

    #[test]
    fn a_refused_commit_page_is_reported() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        write_frame(&mut coalescer, &mut file, 0, false).expect("write");
        let commit = frame_offset(1);
        coalescer.write(&mut file, &header(2, 9), commit).expect("write");
        file.refuse = true;
        let page = commit + FRAME_HEADER_BYTES as u64;
        assert_eq!(
            coalescer.write(&mut file, &[1; PAGE], page),
            Err("disk full"),
            "written at once, so seen"
        );
        assert_eq!(coalescer.pending(), 0);
    }

    #[test]
    fn writes_after_a_commit_header_go_through_until_the_next_frame_header() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        write_frame(&mut coalescer, &mut file, 0, true).expect("write");
        // Padding frames after the commit, each page split in two at a sync point: once after 1000 bytes, once
        // after 24, a piece as long as a frame header, of a page whose bytes 4..8 are zero.
        for (index, split) in [(1, 1000), (2, FRAME_HEADER_BYTES)] {
            let padding = frame_offset(index);
            coalescer.write(&mut file, &header(1, 9), padding).expect("write");
            assert_eq!(coalescer.pending(), 0);
            let page = padding + FRAME_HEADER_BYTES as u64;
            coalescer.write(&mut file, &vec![0; split], page).expect("write");
            assert_eq!(coalescer.pending(), 0);
            coalescer
                .write(&mut file, &vec![5; PAGE - split], page + split as u64)
                .expect("write");
            assert_eq!(
                coalescer.pending(),
                0,
                "the second part of a split write goes through too"
            );
        }
        // The next transaction's first frame header is not a commit's: gathering starts again.
        write_frame(&mut coalescer, &mut file, 3, false).expect("write");
        assert_eq!(coalescer.pending(), FRAME);
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
        coalescer
            .write(&mut file, &header(1, 0), frame_offset(0))
            .expect("write");
        coalescer
            .write(&mut file, &header(3, 9), frame_offset(2))
            .expect("write");
        assert_eq!(coalescer.pending(), 0);
        assert_eq!(file.writes, writes + 2);
        assert_eq!(coalescer.overwrites(), 2);
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
        assert_eq!(coalescer.overwrites(), 1);
    }

    #[test]
    fn runs_stay_bounded() {
        let mut coalescer = WriteCoalescer::new();
        let mut file = MemoryFile::default();
        for index in 0..100 {
            write_frame(&mut coalescer, &mut file, index, false).expect("write");
            assert!(coalescer.pending() <= MAX_RUN_BYTES);
        }
        assert!(file.writes >= 3, "100 frames are more than three runs");
        let end = file.bytes.len() as u64;
        coalescer
            .write(&mut file, &vec![5; MAX_RUN_BYTES + 1], end + 4096)
            .expect("write");
        assert_eq!(
            file.bytes.len() as u64,
            end + 4096 + MAX_RUN_BYTES as u64 + 1,
            "an oversized write goes through"
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Write { offset: u32, len: u32 },
        CommitHeader { slot: u32 },
        Flush,
        Refuse(bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            // Odd lengths, never a page's, so that every 24-byte write is taken for a frame header.
            8 => (0..400u32, 0..32_768u32)
                .prop_map(|(slot, half)| Step::Write { offset: slot * 512, len: half * 2 + 1 }),
            2 => (0..8000u32).prop_map(|slot| Step::CommitHeader { slot }),
            2 => Just(Step::Flush),
            1 => any::<bool>().prop_map(Step::Refuse),
        ]
    }

    proptest! {
        /// The file holds what writing every accepted call straight through would have left: a refused one
        /// leaves nothing, an accepted one is never lost, and order is kept; a commit header that was written
        /// leaves nothing gathered.
        #[test]
        fn the_file_matches_straight_writes(steps in proptest::collection::vec(step(), 1..120)) {
            let mut coalescer = WriteCoalescer::new();
            let mut file = MemoryFile::default();
            let mut straight = MemoryFile::default();
            for (n, step) in steps.iter().enumerate() {
                let (bytes, offset) = match *step {
                    Step::Write { offset, len } => (vec![n as u8; len as usize], u64::from(offset)),
                    Step::CommitHeader { slot } => (header(n as u32, 1).to_vec(), u64::from(slot) * 24),
                    Step::Flush => {
                        let gathered = coalescer.pending() > 0;
                        let flushed = coalescer.flush(&mut file);
                        prop_assert_eq!(flushed.is_ok(), !(file.refuse && gathered));
                        prop_assert_eq!(coalescer.pending() > 0, gathered && file.refuse);
                        continue;
                    }
                    Step::Refuse(refuse) => {
                        file.refuse = refuse;
                        continue;
                    }
                };
                if coalescer.write(&mut file, &bytes, offset).is_ok() {
                    straight.write_at(&bytes, offset).expect("memory");
                    if matches!(step, Step::CommitHeader { .. }) {
                        prop_assert_eq!(coalescer.pending(), 0);
                    }
                }
            }
            file.refuse = false;
            coalescer.flush(&mut file).expect("memory");
            prop_assert_eq!(&file.bytes, &straight.bytes);
        }
    }
}
