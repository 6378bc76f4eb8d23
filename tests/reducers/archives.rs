//! Project folders as a client would upload them: a `.tar.gz` (the `tar` and `flate2` crates) and a `.zip`, written
//! here by a minimal writer (stored or deflated entries, CRC-32 from `flate2::Crc`) so the test owns every byte the
//! server reads.

use std::io::Write;

use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder};

/// One archive member: a directory (`src/`, ending in `/`) or a file with its contents.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
}

/// How a zip stores its files.
#[derive(Clone, Copy, Debug)]
pub enum ZipMethod {
    Stored,
    Deflated,
}

/// A gzipped tar of `entries`, in order, as `tar czf` writes one (regular files 0644, directories 0755).
pub fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_767_225_600);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, path, std::io::empty())
                    .expect("write a tar directory entry");
            }
            Entry::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, *data)
                    .expect("write a tar file entry");
            }
        }
    }
    tar.into_inner()
        .expect("finish the tar")
        .finish()
        .expect("finish the gzip stream")
}

/// A zip of `entries`, in order: local headers and data, then the central directory and its end record.
pub fn zip(entries: &[Entry<'_>], method: ZipMethod) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let (name, data): (&str, &[u8]) = match entry {
            Entry::Dir(path) => (path, &[]),
            Entry::File(path, data) => (path, data),
        };
        let mut crc = flate2::Crc::new();
        crc.update(data);
        // Directories are stored whatever the method, as zip tools write them.
        let (method_code, stored) = match method {
            ZipMethod::Stored => (0_u16, data.to_vec()),
            ZipMethod::Deflated if matches!(entry, Entry::Dir(_)) => (0_u16, Vec::new()),
            ZipMethod::Deflated => {
                let mut deflate = DeflateEncoder::new(Vec::new(), Compression::default());
                deflate.write_all(data).expect("deflate into memory");
                (8, deflate.finish().expect("finish the deflate stream"))
            }
        };
        let offset = u32_of(out.len());
        let fixed = ZipFields {
            method: method_code,
            crc: crc.sum(),
            compressed: u32_of(stored.len()),
            size: u32_of(data.len()),
            name,
        };
        // Local file header.
        out.extend(0x0403_4b50_u32.to_le_bytes());
        out.extend(20_u16.to_le_bytes()); // version needed: 2.0
        fixed.write(&mut out);
        out.extend(0_u16.to_le_bytes()); // extra field length
        out.extend(name.as_bytes());
        out.extend(&stored);
        // Its central directory record.
        central.extend(0x0201_4b50_u32.to_le_bytes());
        central.extend(0x0314_u16.to_le_bytes()); // made by: Unix, 2.0
        central.extend(20_u16.to_le_bytes()); // version needed: 2.0
        fixed.write(&mut central);
        central.extend(0_u16.to_le_bytes()); // extra field length
        central.extend(0_u16.to_le_bytes()); // comment length
        central.extend(0_u16.to_le_bytes()); // disk number
        central.extend(0_u16.to_le_bytes()); // internal attributes
        let mode: u32 = if matches!(entry, Entry::Dir(_)) {
            0o040_755
        } else {
            0o100_644
        };
        central.extend((mode << 16).to_le_bytes()); // external attributes: the Unix mode
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let central_offset = u32_of(out.len());
    let count = u16::try_from(entries.len()).expect("a test zip has few entries");
    out.extend(&central);
    // End of central directory.
    out.extend(0x0605_4b50_u32.to_le_bytes());
    out.extend(0_u16.to_le_bytes()); // this disk
    out.extend(0_u16.to_le_bytes()); // disk of the central directory
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend(u32_of(central.len()).to_le_bytes());
    out.extend(central_offset.to_le_bytes());
    out.extend(0_u16.to_le_bytes()); // comment length
    out
}

/// The fields a local header and a central directory record share, from `flags` to the name's length.
struct ZipFields<'a> {
    method: u16,
    crc: u32,
    compressed: u32,
    size: u32,
    name: &'a str,
}

impl ZipFields<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(0_u16.to_le_bytes()); // flags: sizes known up front, names not flagged UTF-8 (they are ASCII)
        out.extend(self.method.to_le_bytes());
        out.extend(0_u16.to_le_bytes()); // modification time 00:00:00
        out.extend(0x5c21_u16.to_le_bytes()); // modification date 2026-01-01
        out.extend(self.crc.to_le_bytes());
        out.extend(self.compressed.to_le_bytes());
        out.extend(self.size.to_le_bytes());
        let name_len = u16::try_from(self.name.len()).expect("a short entry name");
        out.extend(name_len.to_le_bytes());
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).expect("a test zip is far below 4 GiB")
}
