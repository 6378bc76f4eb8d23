//! An uploaded archive of a project folder (tar.gz or zip) into the sources the compiler takes: path → text.
//!
//! The rules (server/docs/http-api.md, "Upload — POST /reducers"):
//!
//! - every regular file whose name ends in `.cs` is kept, keyed by its path inside the archive with `/` separators
//!   (`src/OrderReducer.cs`); a leading `./` is dropped, and a common top folder is kept: it is part of the path;
//! - anything under a `bin/` or `obj/` folder, at any depth, and every other file (a `.csproj` too: the server decides
//!   the references) is skipped;
//! - directories, symbolic and hard links, devices and FIFOs are skipped silently: nothing here touches the
//!   filesystem, so a link is never followed, only left out;
//! - an absolute path or a `..` segment refuses the whole archive, whatever the entry is (such an archive is hostile
//!   or broken), and so does a kept path outside the compiler's rule ([`is_valid_source_path`]);
//! - sources must be UTF-8 (a leading byte order mark is dropped); counts and sizes are bounded by [`SourceLimits`].
//!
//! Bombs: a tar.gz is read as a stream, and every byte that comes out of the gzip decoder (headers, skipped entries
//! and padding included) counts against [`SourceLimits::max_expanded_bytes`]; reading stops at the first byte over.
//! A zip entry is only inflated when it is kept, and then at most one byte past its declared size (see `zip.rs`),
//! so every entry's declared size counts against the same cap before anything is read: a zip is refused exactly when
//! the same folder as a tar.gz would be, and a skipped entry costs nothing. No buffer is ever sized from a
//! declaration that was not first checked against a limit.

use std::collections::BTreeMap;
use std::io::{self, Read};

use flate2::read::GzDecoder;

pub use super::zip::ZipError;
use super::zip::{Contents, EntryKind, ZipArchive};

/// How an upload's bytes are packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A gzip-compressed tar (`application/gzip`).
    TarGz,
    /// A zip (`application/zip`).
    Zip,
}

impl ArchiveFormat {
    /// The format the bytes' magic number announces: gzip `1f 8b`, zip `PK\x03\x04` (or `PK\x05\x06`, an empty zip).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            Some(Self::TarGz)
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Some(Self::Zip)
        } else {
            None
        }
    }
}

/// What an archive may hold. The defaults are the compiler's own (dotnet-host/src/Hapnd.Compiler/UploadLimits.cs),
/// so an archive that unpacks here is not refused there for its size; a test reads that file to keep them equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimits {
    /// `.cs` files kept.
    pub max_files: usize,
    /// Bytes of one `.cs` file.
    pub max_file_bytes: usize,
    /// Bytes of all kept `.cs` files together.
    pub max_total_bytes: usize,
    /// Bytes the archive expands to, skipped entries included: the bomb guard.
    pub max_expanded_bytes: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            max_files: 64,
            max_file_bytes: 512 * 1024,
            max_total_bytes: 1024 * 1024,
            max_expanded_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The longest source path the compiler takes, in characters (all ASCII).
pub const MAX_SOURCE_PATH_CHARS: usize = 200;

/// The `.cs` sources of an archive, keyed by their relative paths, following the rules in the module doc.
pub fn sources_from_archive(
    bytes: &[u8],
    format: ArchiveFormat,
    limits: &SourceLimits,
) -> Result<BTreeMap<String, String>, ArchiveError> {
    let mut sources = Sources::new(limits);
    match format {
        ArchiveFormat::TarGz => read_tar_gz(bytes, &mut sources)?,
        ArchiveFormat::Zip => read_zip(bytes, &mut sources)?,
    }
    sources.finish()
}

/// The compiler's rule for an upload's file name (`UploadLimits.IsValidPath`): `/`-separated segments, none empty
/// or starting with '.' (so none is `.` or `..`), made of ASCII letters, digits, '_', '-' and '.'; at most
/// [`MAX_SOURCE_PATH_CHARS`] in all; ending in `.cs` or `.csproj`.
pub fn is_valid_source_path(path: &str) -> bool {
    path.len() <= MAX_SOURCE_PATH_CHARS
        && (path.ends_with(".cs") || path.ends_with(".csproj"))
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

/// Why an archive gives no sources. [`ArchiveError::kind`] tells the HTTP layer which answer it is.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive has more than {max} .cs files")]
    TooManyFiles { max: usize },
    #[error("'{path}' is larger than {max} bytes")]
    FileTooLarge { path: String, max: usize },
    #[error("the archive's .cs files come to more than {max} bytes (at '{path}')")]
    TotalTooLarge { path: String, max: usize },
    #[error("the archive expands to more than {max} bytes")]
    ExpansionTooLarge { max: usize },

    #[error("entry '{path}' has an absolute path")]
    AbsolutePath { path: String },
    #[error("entry '{path}' has a '..' segment")]
    ParentSegment { path: String },
    #[error(
        "entry '{path}' is not a relative path of at most {MAX_SOURCE_PATH_CHARS} characters made of '/'-separated \
         segments of letters, digits, '_', '-' or '.', none empty or starting with '.'"
    )]
    InvalidName { path: String },
    #[error("entry '{path}' is not utf-8 text")]
    NonUtf8Source { path: String },
    #[error("entry '{path}' appears twice in the archive")]
    DuplicateEntry { path: String },
    #[error("the archive has no .cs file outside bin/ and obj/")]
    NoSources,

    /// The gzip stream or the tar inside it is damaged; the reason is shown because it is about the user's bytes.
    #[error("the tar.gz archive cannot be read: {0}")]
    TarGz(io::Error),
    #[error(transparent)]
    Zip(#[from] ZipError),
}

/// The three answers an [`ArchiveError`] can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveErrorKind {
    /// Over a limit: 413 `upload_too_large`.
    TooLarge,
    /// Readable, but not an upload the server takes: 400 `invalid_upload`.
    InvalidUpload,
    /// Not a readable archive of the announced format: 400 `invalid_archive`.
    Unreadable,
}

impl ArchiveError {
    pub fn kind(&self) -> ArchiveErrorKind {
        match self {
            Self::TooManyFiles { .. }
            | Self::FileTooLarge { .. }
            | Self::TotalTooLarge { .. }
            | Self::ExpansionTooLarge { .. } => ArchiveErrorKind::TooLarge,
            Self::AbsolutePath { .. }
            | Self::ParentSegment { .. }
            | Self::InvalidName { .. }
            | Self::NonUtf8Source { .. }
            | Self::DuplicateEntry { .. }
            | Self::NoSources => ArchiveErrorKind::InvalidUpload,
            Self::TarGz(_) | Self::Zip(_) => ArchiveErrorKind::Unreadable,
        }
    }

    /// True for the errors answered with 413 rather than 400.
    pub fn is_too_large(&self) -> bool {
        self.kind() == ArchiveErrorKind::TooLarge
    }
}

/// What an entry's path and kind decide, before its bytes are read.
enum Verdict {
    Keep(String),
    Skip,
}

/// The sources kept so far, with the limits that bound them.
struct Sources<'l> {
    limits: &'l SourceLimits,
    files: BTreeMap<String, String>,
    total_bytes: usize,
}

impl<'l> Sources<'l> {
    fn new(limits: &'l SourceLimits) -> Self {
        Self {
            limits,
            files: BTreeMap::new(),
            total_bytes: 0,
        }
    }

    /// Applies the path rules to one entry's raw name (the archive's separators already `/`).
    fn judge(&self, raw_name: &[u8], kind: EntryKind) -> Result<Verdict, ArchiveError> {
        let lossy = String::from_utf8_lossy(raw_name);
        let mut path: &str = &lossy;
        while let Some(rest) = path.strip_prefix("./") {
            path = rest;
        }
        if path.starts_with('/') {
            return Err(ArchiveError::AbsolutePath {
                path: lossy.into_owned(),
            });
        }
        if path.split('/').any(|segment| segment == "..") {
            return Err(ArchiveError::ParentSegment {
                path: lossy.into_owned(),
            });
        }
        if kind != EntryKind::File || !path.ends_with(".cs") {
            return Ok(Verdict::Skip);
        }
        if let Some((folders, _)) = path.rsplit_once('/')
            && folders.split('/').any(|folder| folder == "bin" || folder == "obj")
        {
            return Ok(Verdict::Skip);
        }
        // The lossy decoding is only for messages: a kept name must have been UTF-8 (and ASCII, by the rule).
        if std::str::from_utf8(raw_name).is_err() || !is_valid_source_path(path) {
            return Err(ArchiveError::InvalidName { path: path.to_owned() });
        }
        if self.files.contains_key(path) {
            return Err(ArchiveError::DuplicateEntry { path: path.to_owned() });
        }
        if self.files.len() >= self.limits.max_files {
            return Err(ArchiveError::TooManyFiles {
                max: self.limits.max_files,
            });
        }
        Ok(Verdict::Keep(path.to_owned()))
    }

    fn file_too_large(&self, path: String) -> ArchiveError {
        ArchiveError::FileTooLarge {
            path,
            max: self.limits.max_file_bytes,
        }
    }

    /// Adds one kept file's bytes (at most `max_file_bytes`, the reader saw to it).
    fn add(&mut self, path: String, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        let Ok(mut text) = String::from_utf8(bytes) else {
            return Err(ArchiveError::NonUtf8Source { path });
        };
        if text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
        }
        self.total_bytes += text.len();
        if self.total_bytes > self.limits.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                path,
                max: self.limits.max_total_bytes,
            });
        }
        self.files.insert(path, text);
        Ok(())
    }

    fn finish(self) -> Result<BTreeMap<String, String>, ArchiveError> {
        if self.files.is_empty() {
            return Err(ArchiveError::NoSources);
        }
        Ok(self.files)
    }
}

fn read_tar_gz(bytes: &[u8], sources: &mut Sources<'_>) -> Result<(), ArchiveError> {
    let max = sources.limits.max_expanded_bytes;
    let mut stream = CappedReader::new(GzDecoder::new(bytes), max as u64);
    let result = read_tar(&mut stream, sources).and_then(|()| {
        // The tar ends at its first zero block; the rest of the gzip stream is read too (still counted), so that its
        // CRC and length are checked and a truncated or damaged stream is refused.
        io::copy(&mut stream, &mut io::sink())
            .map(drop)
            .map_err(ArchiveError::TarGz)
    });
    // The cap shows up as an I/O error wherever the tar reader happened to be; name it for what it is.
    if stream.over_cap {
        return Err(ArchiveError::ExpansionTooLarge { max });
    }
    result
}

fn read_tar(stream: &mut CappedReader<GzDecoder<&[u8]>>, sources: &mut Sources<'_>) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(ArchiveError::TarGz)? {
        let mut entry = entry.map_err(ArchiveError::TarGz)?;
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Directory,
            tar::EntryType::Symlink | tar::EntryType::Link => EntryKind::Symlink,
            // Devices, FIFOs, GNU sparse files (whose holes would inflate for free), pax global headers, and kinds
            // this reader does not know: none is a plain source file.
            _ => EntryKind::Other,
        };
        // `path_bytes` follows GNU long names and pax `path` records.
        let verdict = sources.judge(&entry.path_bytes(), kind)?;
        let Verdict::Keep(path) = verdict else {
            continue;
        };
        // A tar entry's size is its framing, so a declaration over the limit is the truth (or a broken archive).
        let max_file_bytes = sources.limits.max_file_bytes as u64;
        if entry.size() > max_file_bytes {
            return Err(sources.file_too_large(path));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(max_file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(ArchiveError::TarGz)?;
        if bytes.len() > sources.limits.max_file_bytes {
            return Err(sources.file_too_large(path));
        }
        sources.add(path, bytes)?;
    }
    Ok(())
}

fn read_zip(bytes: &[u8], sources: &mut Sources<'_>) -> Result<(), ArchiveError> {
    let max = sources.limits.max_expanded_bytes;
    let max_file_bytes = sources.limits.max_file_bytes as u64;
    let archive = ZipArchive::parse(bytes)?;
    let mut expanded: u64 = 0;
    for entry in archive.entries() {
        let entry = entry?;
        // APPNOTE 4.4.17 says '/', but some Windows tools write '\': read both as the separator.
        let name: Vec<u8> = entry
            .name()
            .iter()
            .map(|&b| if b == b'\\' { b'/' } else { b })
            .collect();
        let verdict = sources.judge(&name, entry.kind())?;
        if let Verdict::Keep(path) = &verdict
            && entry.size() > max_file_bytes
        {
            return Err(sources.file_too_large(path.clone()));
        }
        expanded = expanded.saturating_add(entry.size());
        if expanded > max as u64 {
            return Err(ArchiveError::ExpansionTooLarge { max });
        }
        let Verdict::Keep(path) = verdict else {
            continue;
        };
        match entry.read(max_file_bytes)? {
            Contents::Complete(bytes) => sources.add(path, bytes)?,
            Contents::OverLimit => return Err(sources.file_too_large(path)),
        }
    }
    Ok(())
}

/// A reader that yields at most `cap` bytes and fails (noting why) when the stream has more.
struct CappedReader<R> {
    inner: R,
    remaining: u64,
    over_cap: bool,
}

impl<R: Read> CappedReader<R> {
    fn new(inner: R, cap: u64) -> Self {
        Self {
            inner,
            remaining: cap,
            over_cap: false,
        }
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // At the cap: only the end of the stream is still acceptable.
            let mut probe = [0; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.over_cap = true;
            return Err(io::Error::other("the archive expands past the cap"));
        }
        let len = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..len])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Instant;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::super::zip::testing::{TestEntry, deflate_sync, deflate_zeros, zip};
    use super::*;

    /// One tar member: its raw name is written straight into the header, so the tests can make names the `tar`
    /// crate's own `set_path` refuses (`..`, absolute).
    struct Member {
        name: Vec<u8>,
        kind: tar::EntryType,
        data: Vec<u8>,
    }

    fn file(name: &str, data: impl Into<Vec<u8>>) -> Member {
        Member {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.into(),
        }
    }

    fn of_kind(name: &str, kind: tar::EntryType) -> Member {
        Member {
            kind,
            ..file(name, Vec::new())
        }
    }

    fn tar_bytes(members: &[Member]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for member in members {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(member.kind);
            header.set_size(member.data.len() as u64);
            header.set_mode(0o644);
            if member.kind == tar::EntryType::Symlink {
                header.set_link_name("Target.cs").expect("a short link name");
            }
            if member.name.len() <= 100 {
                header.as_old_mut().name[..member.name.len()].copy_from_slice(&member.name);
                header.set_cksum();
                builder.append(&header, &member.data[..]).expect("append to a vec");
            } else {
                // Through a GNU long name record, which `append_data` writes.
                let name = std::str::from_utf8(&member.name).expect("long test names are UTF-8");
                builder
                    .append_data(&mut header, name, &member.data[..])
                    .expect("append to a vec");
            }
        }
        builder.into_inner().expect("finish into a vec")
    }

    fn tar_gz(members: &[Member]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&tar_bytes(members)).expect("write to a vec");
        encoder.finish().expect("finish into a vec")
    }

    fn zip_of(members: &[Member]) -> Vec<u8> {
        let entries: Vec<_> = members
            .iter()
            .map(|member| {
                let mode = match member.kind {
                    tar::EntryType::Directory => 0o040_755,
                    tar::EntryType::Symlink => 0o120_777,
                    _ => 0o100_644,
                };
                TestEntry::deflated("", member.data.clone()).with(|e| {
                    e.name = member.name.clone();
                    e.unix_mode = Some(mode);
                })
            })
            .collect();
        zip(&entries, false)
    }

    /// The same members through both formats, which must agree.
    fn both(members: &[Member], limits: &SourceLimits) -> Result<BTreeMap<String, String>, ArchiveError> {
        let from_tar = sources_from_archive(&tar_gz(members), ArchiveFormat::TarGz, limits);
        let from_zip = sources_from_archive(&zip_of(members), ArchiveFormat::Zip, limits);
        match (&from_tar, &from_zip) {
            (Ok(tar), Ok(zip)) => assert_eq!(tar, zip),
            (Err(tar), Err(zip)) => assert_eq!(tar.to_string(), zip.to_string()),
            _ => panic!("the formats disagree: tar.gz gave {from_tar:?}, zip gave {from_zip:?}"),
        }
        from_tar
    }

    fn keys(sources: &BTreeMap<String, String>) -> Vec<&str> {
        sources.keys().map(String::as_str).collect()
    }

    fn limits() -> SourceLimits {
        SourceLimits::default()
    }

    #[test]
    fn the_format_is_sniffed_from_the_magic_number() {
        assert_eq!(ArchiveFormat::sniff(&tar_gz(&[])), Some(ArchiveFormat::TarGz));
        assert_eq!(
            ArchiveFormat::sniff(&zip_of(&[file("A.cs", "")])),
            Some(ArchiveFormat::Zip)
        );
        assert_eq!(ArchiveFormat::sniff(&zip(&[], false)), Some(ArchiveFormat::Zip));
        assert_eq!(ArchiveFormat::sniff(b"{\"files\": {}}"), None);
        assert_eq!(ArchiveFormat::sniff(b""), None);
    }

    #[test]
    fn nested_paths_are_kept_with_a_top_folder_and_without_a_leading_dot_slash() {
        let sources = both(
            &[
                of_kind("./", tar::EntryType::Directory),
                of_kind("./shop/", tar::EntryType::Directory),
                file("./shop/src/OrderReducer.cs", "class OrderReducer {}"),
                file("./shop/Program.cs", "class Program {}"),
                file("shop/Domain/Events/OrderPlaced.cs", "record OrderPlaced;"),
            ],
            &limits(),
        )
        .expect("a project folder");
        assert_eq!(
            keys(&sources),
            [
                "shop/Domain/Events/OrderPlaced.cs",
                "shop/Program.cs",
                "shop/src/OrderReducer.cs"
            ]
        );
        assert_eq!(sources["shop/src/OrderReducer.cs"], "class OrderReducer {}");
    }

    #[test]
    fn bin_obj_project_files_links_and_other_files_are_skipped() {
        let sources = both(
            &[
                file("Reducer.cs", "class R {}"),
                file("Shop.csproj", "<Project />"),
                file("README.md", "# shop"),
                file("bin/Debug/net10.0/Generated.cs", "x"),
                file("obj/Shop.AssemblyInfo.cs", "x"),
                file("src/obj/Deep.cs", "x"),
                file("src/bin/Deep.cs", "x"),
                file("src/binary/Kept.cs", "class K {}"),
                file("src/obj.cs", "class O {}"),
                of_kind("Link.cs", tar::EntryType::Symlink),
                of_kind("Folder.cs/", tar::EntryType::Directory),
            ],
            &limits(),
        )
        .expect("a project folder");
        assert_eq!(keys(&sources), ["Reducer.cs", "src/binary/Kept.cs", "src/obj.cs"]);
    }

    #[test]
    fn tar_hard_links_devices_and_fifos_are_skipped() {
        let bytes = tar_gz(&[
            file("Reducer.cs", "class R {}"),
            of_kind("Hard.cs", tar::EntryType::Link),
            of_kind("Char.cs", tar::EntryType::Char),
            of_kind("Block.cs", tar::EntryType::Block),
            of_kind("Fifo.cs", tar::EntryType::Fifo),
        ]);
        let sources = sources_from_archive(&bytes, ArchiveFormat::TarGz, &limits()).expect("a tar.gz");
        assert_eq!(keys(&sources), ["Reducer.cs"]);
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let sources = both(&[file("A.cs", "\u{feff}class A {}")], &limits()).expect("a bom");
        assert_eq!(sources["A.cs"], "class A {}");
    }

    #[test]
    fn parent_segments_and_absolute_paths_refuse_the_archive_even_in_skipped_entries() {
        for (name, expected) in [
            ("../Escape.cs", "entry '../Escape.cs' has a '..' segment"),
            ("src/../../notes.txt", "entry 'src/../../notes.txt' has a '..' segment"),
            ("./..", "entry './..' has a '..' segment"),
            ("/etc/Abs.cs", "entry '/etc/Abs.cs' has an absolute path"),
            ("./bin/../x", "entry './bin/../x' has a '..' segment"),
        ] {
            let error = both(&[file("A.cs", "class A {}"), file(name, "x")], &limits()).expect_err(name);
            assert_eq!(error.to_string(), expected);
            assert_eq!(error.kind(), ArchiveErrorKind::InvalidUpload);
        }
        let error = sources_from_archive(
            &zip_of(&[file("src\\..\\..\\Evil.cs", "x")]),
            ArchiveFormat::Zip,
            &limits(),
        )
        .expect_err("a backslash traversal");
        assert!(matches!(error, ArchiveError::ParentSegment { .. }), "{error}");
    }

    #[test]
    fn kept_names_follow_the_compilers_rule() {
        for name in [
            "src/My Reducer.cs",
            "src//A.cs",
            ".hidden/A.cs",
            "src/.A.cs",
            "a/./b.cs",
            "Ünïcode.cs",
        ] {
            let error = both(&[file(name, "x")], &limits()).expect_err(name);
            assert!(matches!(error, ArchiveError::InvalidName { .. }), "{name}: {error}");
        }
        let long = format!("{}/A.cs", "d".repeat(MAX_SOURCE_PATH_CHARS));
        assert!(matches!(
            both(&[file(&long, "x")], &limits()),
            Err(ArchiveError::InvalidName { .. })
        ));
        // Latin-1 "é": not UTF-8, so it cannot be a kept name; in a skipped file it does not matter.
        let tar = tar_gz(&[
            file("A.cs", "x"),
            Member {
                name: b"caf\xe9.txt".to_vec(),
                ..file("", "")
            },
        ]);
        assert!(sources_from_archive(&tar, ArchiveFormat::TarGz, &limits()).is_ok());
        let tar = tar_gz(&[Member {
            name: b"caf\xe9.cs".to_vec(),
            ..file("", "")
        }]);
        let error = sources_from_archive(&tar, ArchiveFormat::TarGz, &limits()).expect_err("a latin-1 name");
        assert!(matches!(error, ArchiveError::InvalidName { .. }), "{error}");
    }

    #[test]
    fn non_utf8_sources_duplicates_and_empty_archives_are_refused() {
        let error = both(&[file("Latin1.cs", b"// caf\xe9".to_vec())], &limits()).expect_err("latin-1");
        assert_eq!(error.to_string(), "entry 'Latin1.cs' is not utf-8 text");
        let error = both(&[file("A.cs", "x"), file("./A.cs", "y")], &limits()).expect_err("twice");
        assert_eq!(error.to_string(), "entry 'A.cs' appears twice in the archive");
        for members in [&[][..], &[file("Shop.csproj", "<Project />"), file("obj/A.cs", "x")]] {
            let error = both(members, &limits()).expect_err("no sources");
            assert!(matches!(error, ArchiveError::NoSources), "{error}");
        }
    }

    #[test]
    fn counts_and_sizes_are_capped() {
        let small = SourceLimits {
            max_files: 2,
            max_file_bytes: 10,
            max_total_bytes: 15,
            max_expanded_bytes: 1 << 20,
        };
        let three = [
            file("A.cs", "a"),
            file("B.cs", "b"),
            file("C.cs", "c"),
            file("D.txt", "skipped"),
        ];
        let error = both(&three, &small).expect_err("three files");
        assert_eq!(error.to_string(), "the archive has more than 2 .cs files");
        assert!(error.is_too_large());
        assert_eq!(both(&three[..2], &small).expect("two files").len(), 2);

        let error = both(&[file("src/Big.cs", "x".repeat(11))], &small).expect_err("a big file");
        assert_eq!(error.to_string(), "'src/Big.cs' is larger than 10 bytes");
        assert!(error.is_too_large());
        assert!(both(&[file("src/Big.cs", "x".repeat(10))], &small).is_ok());

        let error = both(&[file("A.cs", "x".repeat(8)), file("B.cs", "x".repeat(8))], &small).expect_err("total");
        assert_eq!(
            error.to_string(),
            "the archive's .cs files come to more than 15 bytes (at 'B.cs')"
        );
        assert!(error.is_too_large());

        // Skipped entries count towards the expansion cap in both formats.
        let tiny = SourceLimits {
            max_expanded_bytes: 8 * 1024,
            ..limits()
        };
        let error =
            both(&[file("A.cs", "x"), file("assets/logo.png", vec![7; 16 * 1024])], &tiny).expect_err("expanded");
        assert_eq!(error.to_string(), "the archive expands to more than 8192 bytes");
        assert!(error.is_too_large());
    }

    #[test]
    fn a_tar_gz_bomb_is_refused_at_the_cap_without_being_held_in_memory() {
        // See: gzip bombs. A tar of one 1 GiB file of zeros, about 1 MiB gzipped; its gzip trailer is never reached.
        let mut header = tar::Header::new_gnu();
        header.set_path("assets/zeros.bin").expect("a short path");
        header.set_size(1 << 30);
        header.set_cksum();
        let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        bomb.extend(deflate_sync(header.as_bytes()));
        bomb.extend(deflate_zeros(1024));
        bomb.extend([0; 8]);
        assert!(bomb.len() < 2 << 20, "{}", bomb.len());

        let started = Instant::now();
        let error = sources_from_archive(&bomb, ArchiveFormat::TarGz, &limits()).expect_err("a bomb");
        assert!(
            matches!(error, ArchiveError::ExpansionTooLarge { max } if max == 16 << 20),
            "{error}"
        );
        assert!(started.elapsed().as_secs() < 10, "took {:?}", started.elapsed());

        // The same as a .cs file: refused on its declared size, before a byte of it is inflated.
        let mut header = tar::Header::new_gnu();
        header.set_path("Zeros.cs").expect("a short path");
        header.set_size(1 << 30);
        header.set_cksum();
        let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        bomb.extend(deflate_sync(header.as_bytes()));
        bomb.extend(deflate_zeros(1024));
        let error = sources_from_archive(&bomb, ArchiveFormat::TarGz, &limits()).expect_err("a bomb");
        assert!(matches!(error, ArchiveError::FileTooLarge { .. }), "{error}");
    }

    #[test]
    fn a_zip_bomb_is_refused_on_its_declared_sizes_or_one_byte_past_them() {
        // Skipped entries declaring 4 GiB in all: refused at the cap, nothing inflated.
        let entries: Vec<_> = (0..4)
            .map(|i| TestEntry::raw_deflate(&format!("assets/{i}.bin"), deflate_zeros(1), u64::from(u32::MAX / 4)))
            .chain([TestEntry::stored("A.cs", "class A {}")])
            .collect();
        let started = Instant::now();
        let error = sources_from_archive(&zip(&entries, false), ArchiveFormat::Zip, &limits()).expect_err("a bomb");
        assert!(matches!(error, ArchiveError::ExpansionTooLarge { .. }), "{error}");

        // A kept entry declaring 1 GiB: refused by name on the per-file cap.
        let big = TestEntry::raw_deflate("Zeros.cs", deflate_zeros(1024), 1 << 30);
        let error = sources_from_archive(&zip(&[big], false), ArchiveFormat::Zip, &limits()).expect_err("a bomb");
        assert_eq!(error.to_string(), "'Zeros.cs' is larger than 524288 bytes");

        // A kept entry declaring 100 bytes and inflating to 1 GiB: refused one byte past its declaration.
        let liar = TestEntry::raw_deflate("Zeros.cs", deflate_zeros(1024), 100);
        let error = sources_from_archive(&zip(&[liar], false), ArchiveFormat::Zip, &limits()).expect_err("a liar");
        assert!(
            matches!(error, ArchiveError::Zip(ZipError::SizeMismatch { .. })),
            "{error}"
        );
        assert_eq!(error.kind(), ArchiveErrorKind::Unreadable);
        assert!(started.elapsed().as_secs() < 10, "took {:?}", started.elapsed());
    }

    #[test]
    fn damaged_archives_are_unreadable() {
        let good_tar = tar_gz(&[file("A.cs", "class A {}".repeat(200)), file("B.cs", "class B {}")]);
        let good_zip = zip_of(&[file("A.cs", "class A {}")]);
        let mut bad_crc = good_tar.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        let mut bad_checksum = tar_bytes(&[file("A.cs", "x")]);
        bad_checksum[0] = b'B';
        let mut bad_checksum_gz = GzEncoder::new(Vec::new(), Compression::default());
        bad_checksum_gz.write_all(&bad_checksum).expect("write to a vec");
        let bad_checksum_gz = bad_checksum_gz.finish().expect("finish into a vec");

        let cases: [(&[u8], ArchiveFormat); 9] = [
            (&good_tar[..good_tar.len() / 2], ArchiveFormat::TarGz),
            (&good_tar[..good_tar.len() - 4], ArchiveFormat::TarGz),
            (&bad_crc, ArchiveFormat::TarGz),
            (&bad_checksum_gz, ArchiveFormat::TarGz),
            (b"\x1f\x8b garbage, not deflate", ArchiveFormat::TarGz),
            (&[0xAB; 1000], ArchiveFormat::TarGz),
            (&good_zip[..good_zip.len() / 2], ArchiveFormat::Zip),
            (&[0xAB; 1000], ArchiveFormat::Zip),
            (&good_tar, ArchiveFormat::Zip),
        ];
        for (i, (bytes, format)) in cases.into_iter().enumerate() {
            let error = sources_from_archive(bytes, format, &limits()).expect_err("damaged");
            assert_eq!(error.kind(), ArchiveErrorKind::Unreadable, "case {i}: {error}");
        }
        assert!(sources_from_archive(&good_tar, ArchiveFormat::TarGz, &limits()).is_ok());
    }

    #[test]
    fn zip_specific_refusals_reach_the_caller() {
        let encrypted = TestEntry::stored("A.cs", "x").with(|e| e.flags = 1);
        let error = sources_from_archive(&zip(&[encrypted], false), ArchiveFormat::Zip, &limits()).expect_err("x");
        assert_eq!(
            error.to_string(),
            "entry 'A.cs' is encrypted: encrypted archives are not supported"
        );
        // Encrypted or damaged entries that are skipped are never read.
        let skipped = TestEntry::stored("notes.txt", "x").with(|e| e.flags = 1);
        let bad_crc = TestEntry::stored("obj/A.cs", "x").with(|e| e.crc32 = Some(1));
        let ok = [skipped, bad_crc, TestEntry::stored("A.cs", "class A {}")];
        assert!(sources_from_archive(&zip(&ok, false), ArchiveFormat::Zip, &limits()).is_ok());
        let bad_crc = TestEntry::deflated("A.cs", "class A {}").with(|e| e.crc32 = Some(1));
        let error = sources_from_archive(&zip(&[bad_crc], true), ArchiveFormat::Zip, &limits()).expect_err("crc");
        assert_eq!(error.to_string(), "entry 'A.cs' fails its crc-32 check");
        let zip64 = [TestEntry::deflated("src/A.cs", "class A {}")];
        assert!(sources_from_archive(&zip(&zip64, true), ArchiveFormat::Zip, &limits()).is_ok());
    }

    #[test]
    fn every_message_is_lowercase_without_a_trailing_period() {
        let errors = [
            ArchiveError::TooManyFiles { max: 1 },
            ArchiveError::FileTooLarge {
                path: "A.cs".into(),
                max: 1,
            },
            ArchiveError::TotalTooLarge {
                path: "A.cs".into(),
                max: 1,
            },
            ArchiveError::ExpansionTooLarge { max: 1 },
            ArchiveError::AbsolutePath { path: "/A.cs".into() },
            ArchiveError::ParentSegment { path: "../A.cs".into() },
            ArchiveError::InvalidName { path: "A b.cs".into() },
            ArchiveError::NonUtf8Source { path: "A.cs".into() },
            ArchiveError::DuplicateEntry { path: "A.cs".into() },
            ArchiveError::NoSources,
            ArchiveError::TarGz(io::Error::other("unexpected end of file")),
        ];
        let entry = || "A.cs".to_owned();
        let zip_errors = [
            ZipError::NoEndOfCentralDirectory,
            ZipError::MultiDisk,
            ZipError::OutOfBounds { what: "local header" },
            ZipError::BadSignature {
                what: "local header",
                offset: 0,
            },
            ZipError::Zip64Field { entry: entry() },
            ZipError::Encrypted { entry: entry() },
            ZipError::UnsupportedMethod {
                entry: entry(),
                method: 12,
            },
            ZipError::NameMismatch { entry: entry() },
            ZipError::Inflate {
                entry: entry(),
                source: io::Error::other("invalid block type"),
            },
            ZipError::SizeMismatch {
                entry: entry(),
                declared: 1,
            },
            ZipError::CrcMismatch { entry: entry() },
        ];
        let errors = errors.into_iter().chain(zip_errors.map(ArchiveError::Zip));
        for error in errors {
            let message = error.to_string();
            let first = message.chars().next().expect("a message");
            assert!(!first.is_uppercase() && !message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn the_default_limits_are_the_compilers() {
        // See: dotnet-host/src/Hapnd.Compiler/UploadLimits.cs, which refuses the same uploads after the jail is up.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dotnet-host/src/Hapnd.Compiler/UploadLimits.cs"
        );
        let source = std::fs::read_to_string(path).expect("read UploadLimits.cs");
        let constant = |name: &str| -> u64 {
            let line = source
                .lines()
                .find(|line| line.contains(&format!("const int {name} =")))
                .unwrap_or_else(|| panic!("{name} in UploadLimits.cs"));
            let value = line.split('=').nth(1).expect("a value").trim().trim_end_matches(';');
            value
                .split('*')
                .map(|factor| factor.trim().parse::<u64>().expect("a product of integers"))
                .product()
        };
        let defaults = SourceLimits::default();
        assert_eq!(defaults.max_files as u64, constant("MaxFiles"));
        assert_eq!(defaults.max_file_bytes as u64, constant("MaxFileBytes"));
        assert_eq!(defaults.max_total_bytes as u64, constant("MaxTotalBytes"));
        assert_eq!(MAX_SOURCE_PATH_CHARS as u64, constant("MaxPathLength"));
        assert_eq!(defaults.max_expanded_bytes, 16 << 20);
    }

    #[test]
    fn the_path_rule_matches_the_compilers_cases() {
        for good in ["A.cs", "src/Orders/OrderReducer.cs", "a-b_c.d/e.cs", "Shop.csproj"] {
            assert!(is_valid_source_path(good), "{good}");
        }
        for bad in [
            "../x.cs",
            "/abs.cs",
            "a//b.cs",
            ".hidden/x.cs",
            "./x.cs",
            "x.txt",
            "a b.cs",
            "src/",
            "",
        ] {
            assert!(!is_valid_source_path(bad), "{bad}");
        }
    }
}
