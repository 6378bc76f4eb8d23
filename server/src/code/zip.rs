//! A minimal zip reader for uploads: no zip crate is vendored, and an upload needs little of the format.
//!
//! It follows PKWARE's APPNOTE.TXT as far as a project folder zipped by common tools needs: the End of Central
//! Directory record (searched backwards over the last 64 KiB + 22 bytes, the longest a comment allows), the zip64
//! records when present, the central directory, each entry's local header, and entries stored (method 0) or deflated
//! (method 8, through flate2's raw decoder) with their CRC-32 checked. Encrypted entries, other methods and archives
//! split over several disks are refused with an error naming the entry.
//!
//! The archive is a byte slice already in memory (the request body, bounded by the HTTP layer), so nothing is
//! streamed and nothing seeks. What is *not* bounded by the body is what an entry inflates to; so
//! [`ZipEntry::read`] takes a limit, refuses an entry whose declared size is over it before inflating anything, and
//! inflates at most one byte past the declared size: an entry that inflates to more or less than it declares is
//! refused, so a declared size is only believed once it has been checked against the bytes.
//!
//! The central directory is the authority (as in most readers): sizes, method, flags and CRC come from it; the local
//! header only tells where the data starts, and must name the same file, so that two readers cannot disagree on what
//! an entry is called.

use std::io::{self, Read};

use flate2::Crc;
use flate2::read::DeflateDecoder;

/// A zip archive in memory whose central directory has been located.
pub struct ZipArchive<'a> {
    bytes: &'a [u8],
    directory: &'a [u8],
    entries: u64,
}

/// What an entry is, from its name and its Unix mode when the archive carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// A device, a FIFO or a socket.
    Other,
}

/// One central directory record.
pub struct ZipEntry<'a> {
    archive: &'a [u8],
    name: &'a [u8],
    kind: EntryKind,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    size: u64,
    local_header_offset: u64,
}

/// An entry's bytes, or the news that it declares more than the caller's limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Contents {
    Complete(Vec<u8>),
    /// The entry declares more bytes than the limit; nothing was inflated.
    OverLimit,
}

/// Why an archive or one of its entries cannot be read. Entry names are shown lossily decoded.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("not a zip archive, or a truncated one: no end of central directory record")]
    NoEndOfCentralDirectory,
    #[error("zip archives split over several disks are not supported")]
    MultiDisk,
    #[error("the zip archive is damaged: the {what} lies outside it")]
    OutOfBounds { what: &'static str },
    #[error("the zip archive is damaged: no {what} signature at offset {offset}")]
    BadSignature { what: &'static str, offset: u64 },
    #[error("entry '{entry}': its zip64 extra field is missing or too short")]
    Zip64Field { entry: String },
    #[error("entry '{entry}' is encrypted: encrypted archives are not supported")]
    Encrypted { entry: String },
    #[error("entry '{entry}' uses compression method {method}: only stored (0) and deflate (8) are supported")]
    UnsupportedMethod { entry: String, method: u16 },
    #[error("entry '{entry}': its local header names another file")]
    NameMismatch { entry: String },
    #[error("entry '{entry}' cannot be inflated: {source}")]
    Inflate { entry: String, source: io::Error },
    #[error("entry '{entry}' does not hold the {declared} bytes it declares")]
    SizeMismatch { entry: String, declared: u64 },
    #[error("entry '{entry}' fails its crc-32 check")]
    CrcMismatch { entry: String },
}

impl<'a> ZipArchive<'a> {
    /// Locates the central directory; entries are only looked at by [`ZipArchive::entries`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ZipError> {
        let eocd = find_end_of_central_directory(bytes)?;
        let at = Fields::new(bytes, eocd);
        let disk = at.u16(4);
        let directory_disk = at.u16(6);
        let entries_here = u64::from(at.u16(8));
        let mut entries = u64::from(at.u16(10));
        let mut directory_size = u64::from(at.u32(12));
        let mut directory_offset = u64::from(at.u32(16));
        // Where the central directory must end: the first of the end records.
        let mut directory_limit = eocd as u64;

        if let Some(locator) = eocd.checked_sub(ZIP64_LOCATOR_LEN)
            && bytes[locator..].starts_with(ZIP64_LOCATOR_SIGNATURE)
        {
            let at = Fields::new(bytes, locator);
            if at.u32(4) != 0 || at.u32(16) > 1 {
                return Err(ZipError::MultiDisk);
            }
            let record_offset = at.u64(8);
            let record = usize::try_from(record_offset)
                .ok()
                .filter(|&r| r.checked_add(ZIP64_EOCD_LEN).is_some_and(|end| end <= locator))
                .ok_or(ZipError::OutOfBounds {
                    what: "zip64 end of central directory record",
                })?;
            if !bytes[record..].starts_with(ZIP64_EOCD_SIGNATURE) {
                return Err(ZipError::BadSignature {
                    what: "zip64 end of central directory",
                    offset: record_offset,
                });
            }
            let at = Fields::new(bytes, record);
            if at.u32(16) != 0 || at.u32(20) != 0 || at.u64(24) != at.u64(32) {
                return Err(ZipError::MultiDisk);
            }
            entries = at.u64(32);
            directory_size = at.u64(40);
            directory_offset = at.u64(48);
            directory_limit = record_offset;
        } else if disk != 0 || directory_disk != 0 || entries_here != entries {
            return Err(ZipError::MultiDisk);
        }

        let directory = directory_offset
            .checked_add(directory_size)
            .filter(|&end| end <= directory_limit)
            .map(|end| &bytes[directory_offset as usize..end as usize])
            .ok_or(ZipError::OutOfBounds {
                what: "central directory",
            })?;
        Ok(Self {
            bytes,
            directory,
            entries,
        })
    }

    /// The central directory's records, in order; the first damaged one ends the walk with its error.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            archive: self.bytes,
            directory: self.directory,
            offset: 0,
            remaining: self.entries,
        }
    }
}

/// The iterator of [`ZipArchive::entries`].
pub struct Entries<'a> {
    archive: &'a [u8],
    directory: &'a [u8],
    offset: usize,
    remaining: u64,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<ZipEntry<'a>, ZipError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let entry = self.parse_one();
        if entry.is_err() {
            self.remaining = 0;
        }
        Some(entry)
    }
}

impl<'a> Entries<'a> {
    fn parse_one(&mut self) -> Result<ZipEntry<'a>, ZipError> {
        const FIXED: usize = 46;
        let start = self.offset;
        let out_of_bounds = ZipError::OutOfBounds {
            what: "central directory record",
        };
        if self.directory.len().saturating_sub(start) < FIXED {
            return Err(out_of_bounds);
        }
        let at = Fields::new(self.directory, start);
        if !self.directory[start..].starts_with(CENTRAL_SIGNATURE) {
            return Err(ZipError::BadSignature {
                what: "central directory record",
                offset: start as u64,
            });
        }
        let made_by_host = at.u16(4) >> 8;
        let flags = at.u16(8);
        let method = at.u16(10);
        let crc32 = at.u32(16);
        let mut compressed_size = u64::from(at.u32(20));
        let mut size = u64::from(at.u32(24));
        let name_len = usize::from(at.u16(28));
        let extra_len = usize::from(at.u16(30));
        let comment_len = usize::from(at.u16(32));
        let external_attributes = at.u32(38);
        let mut local_header_offset = u64::from(at.u32(42));

        let name_start = start + FIXED;
        let extra_start = name_start + name_len;
        let end = extra_start + extra_len + comment_len;
        if end > self.directory.len() {
            return Err(out_of_bounds);
        }
        let name = &self.directory[name_start..extra_start];
        let extra = &self.directory[extra_start..extra_start + extra_len];
        self.offset = end;

        if size == u64::from(u32::MAX)
            || compressed_size == u64::from(u32::MAX)
            || local_header_offset == u64::from(u32::MAX)
        {
            let missing = || ZipError::Zip64Field {
                entry: String::from_utf8_lossy(name).into_owned(),
            };
            let mut values = zip64_extra(extra).ok_or_else(missing)?;
            // APPNOTE 4.5.3: only the saturated fields are present, in this order.
            for field in [&mut size, &mut compressed_size, &mut local_header_offset] {
                if *field == u64::from(u32::MAX) {
                    *field = values.next().ok_or_else(missing)?;
                }
            }
        }

        Ok(ZipEntry {
            archive: self.archive,
            name,
            kind: kind_of(name, made_by_host, external_attributes),
            flags,
            method,
            crc32,
            compressed_size,
            size,
            local_header_offset,
        })
    }
}

impl ZipEntry<'_> {
    /// The name as stored: `/`-separated by the format's rules, UTF-8 or ASCII in practice (not checked here).
    pub fn name(&self) -> &[u8] {
        self.name
    }

    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The size the entry declares once inflated; [`ZipEntry::read`] holds the entry to it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Inflates the entry if it declares at most `limit` bytes, checking that it inflates to exactly its declared size
    /// and that its CRC-32 matches. Never inflates more than one byte past the declared size.
    pub fn read(&self, limit: u64) -> Result<Contents, ZipError> {
        if self.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 {
            return Err(ZipError::Encrypted { entry: self.display() });
        }
        if self.method != METHOD_STORED && self.method != METHOD_DEFLATE {
            return Err(ZipError::UnsupportedMethod {
                entry: self.display(),
                method: self.method,
            });
        }
        if self.size > limit {
            return Ok(Contents::OverLimit);
        }
        let data = self.data()?;
        let size_mismatch = || ZipError::SizeMismatch {
            entry: self.display(),
            declared: self.size,
        };
        let bytes = if self.method == METHOD_STORED {
            if data.len() as u64 != self.size {
                return Err(size_mismatch());
            }
            data.to_vec()
        } else {
            // The declared size is at most `limit` here, so it may size the buffer.
            let mut out = Vec::with_capacity(self.size as usize);
            DeflateDecoder::new(data)
                .take(self.size + 1)
                .read_to_end(&mut out)
                .map_err(|source| ZipError::Inflate {
                    entry: self.display(),
                    source,
                })?;
            if out.len() as u64 != self.size {
                return Err(size_mismatch());
            }
            out
        };
        let mut crc = Crc::new();
        crc.update(&bytes);
        if crc.sum() != self.crc32 {
            return Err(ZipError::CrcMismatch { entry: self.display() });
        }
        Ok(Contents::Complete(bytes))
    }

    /// The compressed bytes, found through the local header.
    fn data(&self) -> Result<&[u8], ZipError> {
        const FIXED: usize = 30;
        let out_of_bounds = ZipError::OutOfBounds { what: "local header" };
        let start = usize::try_from(self.local_header_offset)
            .ok()
            .filter(|&s| s.checked_add(FIXED).is_some_and(|end| end <= self.archive.len()))
            .ok_or(out_of_bounds)?;
        if !self.archive[start..].starts_with(LOCAL_SIGNATURE) {
            return Err(ZipError::BadSignature {
                what: "local header",
                offset: self.local_header_offset,
            });
        }
        let at = Fields::new(self.archive, start);
        let name_start = start + FIXED;
        let name_end = name_start + usize::from(at.u16(26));
        let data_start = name_end + usize::from(at.u16(28));
        let data_end = usize::try_from(self.compressed_size)
            .ok()
            .and_then(|len| data_start.checked_add(len))
            .filter(|&end| end <= self.archive.len())
            .ok_or(ZipError::OutOfBounds {
                what: "data of an entry",
            })?;
        if self.archive[name_start..name_end] != *self.name {
            return Err(ZipError::NameMismatch { entry: self.display() });
        }
        Ok(&self.archive[data_start..data_end])
    }

    fn display(&self) -> String {
        String::from_utf8_lossy(self.name).into_owned()
    }
}

const EOCD_SIGNATURE: &[u8] = b"PK\x05\x06";
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIGNATURE: &[u8] = b"PK\x06\x07";
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIGNATURE: &[u8] = b"PK\x06\x06";
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_SIGNATURE: &[u8] = b"PK\x01\x02";
const LOCAL_SIGNATURE: &[u8] = b"PK\x03\x04";
const ZIP64_EXTRA_ID: u16 = 0x0001;

const FLAG_ENCRYPTED: u16 = 1 << 0;
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATE: u16 = 8;

/// "Version made by" hosts whose external attributes carry a Unix mode in their high 16 bits.
const HOST_UNIX: u16 = 3;
const HOST_DARWIN: u16 = 19;
const MSDOS_DIRECTORY: u32 = 0x10;

/// The last EOCD signature whose comment fits in the archive, within the last 64 KiB + 22 bytes.
fn find_end_of_central_directory(bytes: &[u8]) -> Result<usize, ZipError> {
    let last = bytes
        .len()
        .checked_sub(EOCD_LEN)
        .ok_or(ZipError::NoEndOfCentralDirectory)?;
    let first = last.saturating_sub(usize::from(u16::MAX));
    (first..=last)
        .rev()
        .find(|&at| {
            bytes[at..].starts_with(EOCD_SIGNATURE)
                && at + EOCD_LEN + usize::from(Fields::new(bytes, at).u16(20)) <= bytes.len()
        })
        .ok_or(ZipError::NoEndOfCentralDirectory)
}

/// The 64-bit values of a zip64 extended information field, if the extra data has one.
fn zip64_extra(mut extra: &[u8]) -> Option<impl Iterator<Item = u64> + '_> {
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let data = extra.get(4..4 + len)?;
        if id == ZIP64_EXTRA_ID {
            return Some(
                data.chunks_exact(8)
                    .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"))),
            );
        }
        extra = &extra[4 + len..];
    }
    None
}

fn kind_of(name: &[u8], made_by_host: u16, external_attributes: u32) -> EntryKind {
    if name.ends_with(b"/") {
        return EntryKind::Directory;
    }
    if made_by_host == HOST_UNIX || made_by_host == HOST_DARWIN {
        const TYPE_MASK: u32 = 0o170_000;
        return match (external_attributes >> 16) & TYPE_MASK {
            // 0: no mode recorded (some writers leave it out even on Unix).
            0 | 0o100_000 => EntryKind::File,
            0o040_000 => EntryKind::Directory,
            0o120_000 => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
    }
    if external_attributes & MSDOS_DIRECTORY != 0 {
        EntryKind::Directory
    } else {
        EntryKind::File
    }
}

/// Little-endian fields of a record; the caller has checked that the record's fixed part is in bounds.
struct Fields<'a> {
    record: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8], offset: usize) -> Self {
        Self {
            record: &bytes[offset..],
        }
    }

    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.array(at))
    }

    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.array(at))
    }

    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.array(at))
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        self.record[at..at + N]
            .try_into()
            .expect("the caller checked the record's fixed part is in bounds")
    }
}

/// A zip writer for tests: just enough to build the archives the reader must take or refuse.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    use flate2::write::DeflateEncoder;
    use flate2::{Compression, Crc};

    /// One entry to write; the builders set the fields a test wants wrong.
    #[derive(Clone)]
    pub struct TestEntry {
        pub name: Vec<u8>,
        pub data: Vec<u8>,
        pub method: u16,
        pub flags: u16,
        /// A Unix mode (with its type bits); `None` writes a DOS-made entry.
        pub unix_mode: Option<u32>,
        /// Compressed bytes to write instead of compressing `data` (for hand-made deflate streams).
        pub raw: Option<Vec<u8>>,
        pub crc32: Option<u32>,
        pub declared_size: Option<u64>,
        /// A different name in the local header.
        pub local_name: Option<Vec<u8>>,
    }

    impl TestEntry {
        pub fn stored(name: &str, data: impl Into<Vec<u8>>) -> Self {
            Self {
                name: name.as_bytes().to_vec(),
                data: data.into(),
                method: 0,
                flags: 0,
                unix_mode: Some(0o100_644),
                raw: None,
                crc32: None,
                declared_size: None,
                local_name: None,
            }
        }

        pub fn deflated(name: &str, data: impl Into<Vec<u8>>) -> Self {
            Self {
                method: 8,
                ..Self::stored(name, data)
            }
        }

        /// A deflate entry of the given compressed bytes, declaring `size` bytes and any CRC.
        pub fn raw_deflate(name: &str, compressed: Vec<u8>, size: u64) -> Self {
            Self {
                raw: Some(compressed),
                declared_size: Some(size),
                crc32: Some(0),
                ..Self::deflated(name, Vec::new())
            }
        }

        pub fn directory(name: &str) -> Self {
            Self {
                unix_mode: Some(0o040_755),
                ..Self::stored(name, Vec::new())
            }
        }

        pub fn with(mut self, change: impl FnOnce(&mut Self)) -> Self {
            change(&mut self);
            self
        }
    }

    /// A zip archive of `entries`; with `zip64`, every size and offset goes through the zip64 records.
    pub fn zip(entries: &[TestEntry], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for entry in entries {
            let compressed = match (&entry.raw, entry.method) {
                (Some(raw), _) => raw.clone(),
                (None, 8) => {
                    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
                    encoder.write_all(&entry.data).expect("write to a vec");
                    encoder.finish().expect("finish into a vec")
                }
                (None, _) => entry.data.clone(),
            };
            let crc32 = entry.crc32.unwrap_or_else(|| {
                let mut crc = Crc::new();
                crc.update(&entry.data);
                crc.sum()
            });
            let size = entry.declared_size.unwrap_or(entry.data.len() as u64);
            let offset = out.len() as u64;
            let local_name = entry.local_name.as_ref().unwrap_or(&entry.name);
            let (size32, compressed32, offset32) = if zip64 {
                (u32::MAX, u32::MAX, u32::MAX)
            } else {
                (size as u32, compressed.len() as u32, offset as u32)
            };
            let mut zip64_extra = Vec::new();
            if zip64 {
                zip64_extra.extend(1u16.to_le_bytes());
                zip64_extra.extend(24u16.to_le_bytes());
                zip64_extra.extend(size.to_le_bytes());
                zip64_extra.extend((compressed.len() as u64).to_le_bytes());
                zip64_extra.extend(offset.to_le_bytes());
            }

            out.extend(b"PK\x03\x04");
            out.extend(20u16.to_le_bytes());
            out.extend(entry.flags.to_le_bytes());
            out.extend(entry.method.to_le_bytes());
            out.extend([0; 4]); // time, date
            out.extend(crc32.to_le_bytes());
            out.extend(compressed32.to_le_bytes());
            out.extend(size32.to_le_bytes());
            out.extend((local_name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(local_name);
            out.extend(&compressed);

            let (made_by, external) = match entry.unix_mode {
                Some(mode) => ((3u16 << 8) | 20, mode << 16),
                None => (20, 0),
            };
            central.extend(b"PK\x01\x02");
            central.extend(made_by.to_le_bytes());
            central.extend(20u16.to_le_bytes());
            central.extend(entry.flags.to_le_bytes());
            central.extend(entry.method.to_le_bytes());
            central.extend([0; 4]);
            central.extend(crc32.to_le_bytes());
            central.extend(compressed32.to_le_bytes());
            central.extend(size32.to_le_bytes());
            central.extend((entry.name.len() as u16).to_le_bytes());
            central.extend((zip64_extra.len() as u16).to_le_bytes());
            central.extend(0u16.to_le_bytes()); // comment
            central.extend(0u16.to_le_bytes()); // disk
            central.extend(0u16.to_le_bytes()); // internal attributes
            central.extend(external.to_le_bytes());
            central.extend(offset32.to_le_bytes());
            central.extend(&entry.name);
            central.extend(&zip64_extra);
        }
        let directory_offset = out.len() as u64;
        out.extend(&central);
        let count = entries.len() as u64;
        if zip64 {
            let record = out.len() as u64;
            out.extend(b"PK\x06\x06");
            out.extend(44u64.to_le_bytes());
            out.extend(45u16.to_le_bytes());
            out.extend(45u16.to_le_bytes());
            out.extend(0u32.to_le_bytes());
            out.extend(0u32.to_le_bytes());
            out.extend(count.to_le_bytes());
            out.extend(count.to_le_bytes());
            out.extend((central.len() as u64).to_le_bytes());
            out.extend(directory_offset.to_le_bytes());
            out.extend(b"PK\x06\x07");
            out.extend(0u32.to_le_bytes());
            out.extend(record.to_le_bytes());
            out.extend(1u32.to_le_bytes());
        }
        let (count16, size32, offset32) = if zip64 {
            (u16::MAX, u32::MAX, u32::MAX)
        } else {
            (count as u16, central.len() as u32, directory_offset as u32)
        };
        out.extend(b"PK\x05\x06");
        out.extend([0; 4]); // disks
        out.extend(count16.to_le_bytes());
        out.extend(count16.to_le_bytes());
        out.extend(size32.to_le_bytes());
        out.extend(offset32.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    /// A raw deflate stream of `mib` MiB of zeros, built by repeating one compressed MiB rather than compressing
    /// them all (debug builds compress slowly): each repetition is a byte-aligned run of non-final blocks whose
    /// back-references stay inside it, then one empty final block ends the stream.
    pub fn deflate_zeros(mib: usize) -> Vec<u8> {
        let mut out = deflate_sync(&vec![0; 1 << 20]).repeat(mib);
        out.extend([0x03, 0x00]); // a final, fixed-Huffman block holding only its end code
        out
    }

    /// `data` as raw deflate blocks ending byte-aligned (a sync flush), with no final block.
    pub fn deflate_sync(data: &[u8]) -> Vec<u8> {
        let mut compress = flate2::Compress::new(Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() / 100 + 1024);
        loop {
            let consumed = compress.total_in() as usize;
            out.reserve(1024);
            compress
                .compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Sync)
                .expect("compress into a vec");
            if compress.total_in() as usize == data.len() && out.capacity() > out.len() {
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::testing::{TestEntry, deflate_zeros, zip};
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<(String, EntryKind, Contents)>, ZipError> {
        ZipArchive::parse(bytes)?
            .entries()
            .map(|entry| {
                let entry = entry?;
                Ok((
                    String::from_utf8_lossy(entry.name()).into_owned(),
                    entry.kind(),
                    entry.read(1 << 20)?,
                ))
            })
            .collect()
    }

    fn complete(data: &str) -> Contents {
        Contents::Complete(data.as_bytes().to_vec())
    }

    #[test]
    fn stored_and_deflated_entries_are_read_back() {
        let bytes = zip(
            &[
                TestEntry::directory("src/"),
                TestEntry::stored("src/A.cs", "class A {}"),
                TestEntry::deflated("src/B.cs", "class B {}".repeat(100)),
            ],
            false,
        );
        let entries = read_all(&bytes).expect("a well-formed zip");
        assert_eq!(
            entries,
            [
                ("src/".to_owned(), EntryKind::Directory, complete("")),
                ("src/A.cs".to_owned(), EntryKind::File, complete("class A {}")),
                (
                    "src/B.cs".to_owned(),
                    EntryKind::File,
                    complete(&"class B {}".repeat(100))
                ),
            ]
        );
    }

    #[test]
    fn zip64_records_and_extra_fields_are_followed() {
        let bytes = zip(
            &[
                TestEntry::stored("A.cs", "class A {}"),
                TestEntry::deflated("B.cs", "class B {}"),
            ],
            true,
        );
        let entries = read_all(&bytes).expect("a well-formed zip64");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].2, complete("class B {}"));
    }

    #[test]
    fn the_end_record_is_found_behind_a_comment_and_an_empty_archive_has_no_entries() {
        let mut bytes = zip(&[TestEntry::stored("A.cs", "x")], false);
        let comment = b"PK\x05\x06 a comment holding a signature";
        let len = bytes.len();
        bytes[len - 2..].copy_from_slice(&(comment.len() as u16).to_le_bytes());
        bytes.extend(comment);
        // The signature inside the comment is tried first and rejected: its own comment would run past the end.
        assert_eq!(read_all(&bytes).expect("a zip with a comment").len(), 1);

        assert_eq!(read_all(&zip(&[], false)).expect("an empty zip").len(), 0);
    }

    #[test]
    fn an_end_record_further_back_than_a_comment_can_reach_is_not_found() {
        let mut bytes = zip(&[TestEntry::stored("A.cs", "x")], false);
        bytes.extend(vec![0; usize::from(u16::MAX) + 1]);
        assert!(matches!(
            ZipArchive::parse(&bytes),
            Err(ZipError::NoEndOfCentralDirectory)
        ));
    }

    #[test]
    fn symlinks_and_devices_are_told_apart_by_their_unix_mode() {
        let bytes = zip(
            &[
                TestEntry::stored("link.cs", "target.cs").with(|e| e.unix_mode = Some(0o120_777)),
                TestEntry::stored("fifo.cs", "").with(|e| e.unix_mode = Some(0o010_644)),
                TestEntry::stored("dos.cs", "").with(|e| e.unix_mode = None),
            ],
            false,
        );
        let kinds: Vec<_> = read_all(&bytes)
            .expect("a zip")
            .into_iter()
            .map(|(_, kind, _)| kind)
            .collect();
        assert_eq!(kinds, [EntryKind::Symlink, EntryKind::Other, EntryKind::File]);
    }

    #[test]
    fn an_entry_over_the_limit_is_not_inflated() {
        // Declares 4 GiB - 1 of data it does not even have: refused on the declaration alone.
        let bytes = zip(
            &[TestEntry::raw_deflate(
                "Big.cs",
                vec![0x03, 0x00],
                u64::from(u32::MAX - 1),
            )],
            false,
        );
        let archive = ZipArchive::parse(&bytes).expect("a zip");
        let entry = archive.entries().next().expect("one entry").expect("a good record");
        assert_eq!(
            entry.read(1 << 20).expect("declared over the limit"),
            Contents::OverLimit
        );
    }

    #[test]
    fn an_entry_inflating_past_its_declared_size_is_refused_after_one_byte_more() {
        // See: zip bombs that understate their size. 256 MiB of zeros declared as 10 bytes.
        let bytes = zip(&[TestEntry::raw_deflate("Liar.cs", deflate_zeros(256), 10)], false);
        let started = Instant::now();
        let error = read_all(&bytes).expect_err("a lying size");
        assert!(matches!(error, ZipError::SizeMismatch { declared: 10, .. }), "{error}");
        assert!(started.elapsed().as_secs() < 5, "took {:?}", started.elapsed());
    }

    #[test]
    fn damaged_entries_are_refused_with_their_name() {
        let cases: [(TestEntry, &str); 6] = [
            (
                TestEntry::deflated("A.cs", "class A {}").with(|e| e.crc32 = Some(1)),
                "entry 'A.cs' fails its crc-32 check",
            ),
            (
                TestEntry::stored("A.cs", "class A {}").with(|e| e.declared_size = Some(4)),
                "entry 'A.cs' does not hold the 4 bytes it declares",
            ),
            (
                TestEntry::stored("A.cs", "x").with(|e| e.flags = 1),
                "entry 'A.cs' is encrypted: encrypted archives are not supported",
            ),
            (
                TestEntry::stored("A.cs", "x").with(|e| e.method = 12),
                "entry 'A.cs' uses compression method 12: only stored (0) and deflate (8) are supported",
            ),
            (
                TestEntry::stored("A.cs", "x").with(|e| e.local_name = Some(b"B.cs".to_vec())),
                "entry 'A.cs': its local header names another file",
            ),
            (
                TestEntry::raw_deflate("A.cs", vec![0xff; 16], 3),
                "entry 'A.cs' cannot be inflated: ",
            ),
        ];
        for (entry, message) in cases {
            let error = read_all(&zip(&[entry], false)).expect_err(message);
            assert!(error.to_string().starts_with(message), "{error} is not {message}");
        }
    }

    #[test]
    fn damaged_archives_are_refused() {
        let good = zip(&[TestEntry::stored("A.cs", "class A {}")], false);
        let directory_offset = good.len() - 22 - (46 + 4);

        let truncated = &good[..good.len() - 10];
        assert!(matches!(read_all(truncated), Err(ZipError::NoEndOfCentralDirectory)));

        let mut directory_past_end = good.clone();
        let at = directory_past_end.len() - 6;
        directory_past_end[at..at + 4].copy_from_slice(&(good.len() as u32).to_le_bytes());
        assert!(matches!(
            read_all(&directory_past_end),
            Err(ZipError::OutOfBounds { .. })
        ));

        let mut bad_central = good.clone();
        bad_central[directory_offset] = b'X';
        assert!(matches!(read_all(&bad_central), Err(ZipError::BadSignature { .. })));

        let mut bad_local = good.clone();
        bad_local[0] = b'X';
        assert!(matches!(read_all(&bad_local), Err(ZipError::BadSignature { .. })));

        let mut local_past_end = good.clone();
        let at = directory_offset + 42;
        local_past_end[at..at + 4].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
        assert!(matches!(read_all(&local_past_end), Err(ZipError::OutOfBounds { .. })));

        let mut multi_disk = good.clone();
        let at = multi_disk.len() - 18;
        multi_disk[at] = 1;
        assert!(matches!(read_all(&multi_disk), Err(ZipError::MultiDisk)));

        let mut zip64_without_extra = good;
        zip64_without_extra[directory_offset + 24..directory_offset + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_all(&zip64_without_extra),
            Err(ZipError::Zip64Field { .. })
        ));

        for garbage in [&b""[..], b"PK", &[0xAB; 100]] {
            assert!(matches!(read_all(garbage), Err(ZipError::NoEndOfCentralDirectory)));
        }
    }
}
