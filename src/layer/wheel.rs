//! Wheel (`.whl`) archive reader and decompressed-member cache.
//!
//! A wheel is a zip archive. [`WheelArchive::open`] reads only the end-of-central-directory
//! records and the central directory (two or three positional reads, no local headers, no
//! member data), validates every member name and the archive layout, and refuses the whole
//! wheel if anything is unsafe. [`MemberCache::open`] then readies one member for reading:
//! stored members are served in place from the `.whl`, deflated ones are decompressed once
//! (size and CRC-32 checked) and kept in a byte-budgeted LRU in memory or, when large, in an
//! unlinked spill file.
//!
//! The central directory is parsed here by hand rather than with the `zip` crate because
//! `zip::ZipArchive::by_index_raw` (zip 9.4) reads the member's local header eagerly
//! (`find_content` → `data_start`), and because a small parser gives full control over the
//! checks an untrusted archive needs. Quotations are from PKWARE's APPNOTE.TXT 6.3.x.
//!
//! Nothing here logs above `debug`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flate2::read::DeflateDecoder;
use lru::LruCache;
use parking_lot::Mutex;
use tracing::{debug, trace};

use crate::fsutil::{read_at, read_exact_at};

// ---------------------------------------------------------------------------------------------
// Zip format constants
// ---------------------------------------------------------------------------------------------

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const MAX_COMMENT_LEN: usize = 0xFFFF;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const CENTRAL_HEADER_LEN: usize = 46;
const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const LOCAL_HEADER_LEN: u64 = 30;

const EXTRA_ZIP64: u16 = 0x0001;
const EXTRA_EXTENDED_TIMESTAMP: u16 = 0x5455;

const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;
const METHOD_AES: u16 = 99;

const FLAG_ENCRYPTED: u16 = 1 << 0;
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
const FLAG_UTF8: u16 = 1 << 11;
const FLAG_MASKED_CENTRAL_DIRECTORY: u16 = 1 << 13;

const HOST_UNIX: u8 = 3;
const HOST_OSX: u8 = 19;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Deflate cannot expand better than 1032:1 (a 258-byte match coded in two 1-bit codes), so a
/// larger declared ratio is a lie.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Longest symlink target accepted (Linux PATH_MAX minus the NUL).
const MAX_SYMLINK_TARGET: u64 = 4095;
/// Longest path component a filesystem takes (Linux NAME_MAX; also the NTFS limit).
const MAX_NAME_LEN: usize = 255;
/// First read of the file tail when looking for the end-of-central-directory record.
const SMALL_TAIL: u64 = 4096;
const COPY_BUFFER: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Everything that can go wrong reading a wheel. Every variant names the wheel file and, where
/// one is involved, the member, and its message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    /// Reading the wheel file failed (or it changed while in use).
    #[error(
        "cannot read wheel {}{}: {source}; check that the file exists, is readable and was not modified while in use",
        .wheel.display(),
        member_suffix(.member)
    )]
    Io {
        wheel: PathBuf,
        member: Option<String>,
        #[source]
        source: io::Error,
    },
    /// The archive structure (end records, central directory) is broken or not a zip at all.
    #[error(
        "wheel {} is not a readable zip archive: {why}; re-download or rebuild the wheel",
        .wheel.display()
    )]
    Malformed { wheel: PathBuf, why: String },
    /// A member would escape the wheel or clash with another: the whole wheel is refused.
    #[error(
        "wheel {} was refused: member {member:?} {why}; a wheel may only contain unique relative paths inside itself, so rebuild it or get it from a trusted source",
        .wheel.display()
    )]
    Unsafe {
        wheel: PathBuf,
        member: String,
        why: String,
    },
    /// A member uses a zip feature this reader does not implement (encryption, other methods).
    #[error(
        "wheel {} cannot be served: member {member:?} {why}; rebuild the wheel with unencrypted stored or deflated members",
        .wheel.display()
    )]
    Unsupported {
        wheel: PathBuf,
        member: String,
        why: String,
    },
    /// A member's data or metadata is inconsistent (bad offsets, CRC or size mismatch, ...).
    #[error(
        "wheel {} is corrupt: member {member:?} {why}; re-download the wheel and check its hash",
        .wheel.display()
    )]
    Corrupt {
        wheel: PathBuf,
        member: String,
        why: String,
    },
    /// The caller asked for a member index that does not exist.
    #[error(
        "wheel {}: there is no member #{index} (the wheel has {count}); this is a bug in the caller",
        .wheel.display()
    )]
    NoSuchMember {
        wheel: PathBuf,
        index: usize,
        count: usize,
    },
    /// The caller asked for file data of a directory, or a symlink target of a non-symlink.
    #[error(
        "wheel {}: member {member:?} is a {found}, not a {wanted}; this is a bug in the caller",
        .wheel.display()
    )]
    WrongKind {
        wheel: PathBuf,
        member: String,
        found: MemberKind,
        wanted: &'static str,
    },
    /// Writing the decompressed member to the spill directory failed.
    #[error(
        "cannot spill member {member:?} of wheel {} to {}: {source}; check free space and permissions there, or raise the spill threshold",
        .wheel.display(),
        .dir.display()
    )]
    Spill {
        wheel: PathBuf,
        member: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn member_suffix(member: &Option<String>) -> String {
    member
        .as_ref()
        .map(|m| format!(" (member {m:?})"))
        .unwrap_or_default()
}

impl WheelError {
    fn io(wheel: &Path, member: Option<&str>, source: io::Error) -> Self {
        Self::Io {
            wheel: wheel.to_owned(),
            member: member.map(str::to_owned),
            source,
        }
    }

    fn malformed(wheel: &Path, why: impl Into<String>) -> Self {
        Self::Malformed {
            wheel: wheel.to_owned(),
            why: why.into(),
        }
    }

    fn unsafe_member(wheel: &Path, member: &str, why: impl Into<String>) -> Self {
        Self::Unsafe {
            wheel: wheel.to_owned(),
            member: member.to_owned(),
            why: why.into(),
        }
    }

    fn unsupported(wheel: &Path, member: &str, why: impl Into<String>) -> Self {
        Self::Unsupported {
            wheel: wheel.to_owned(),
            member: member.to_owned(),
            why: why.into(),
        }
    }

    fn corrupt(wheel: &Path, member: &str, why: impl Into<String>) -> Self {
        Self::Corrupt {
            wheel: wheel.to_owned(),
            member: member.to_owned(),
            why: why.into(),
        }
    }
}

/// `Read` over the byte range `[pos, end)` of a file, using positional reads only (so many
/// readers can share one `File`).
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = read_at(self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            // Deliberately not `UnexpectedEof`: that kind means "truncated deflate stream"
            // when it comes out of the decoder, and this is a file that shrank under us.
            return Err(io::Error::other(
                "the wheel file ended early (was it modified?)",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Little-endian field reader
// ---------------------------------------------------------------------------------------------

/// Reads little-endian fields ("All values MUST be stored in little-endian byte order",
/// APPNOTE 4.4.1.1) from a byte slice; every accessor returns `None` when the slice runs out.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
}

/// Iterate the `(header id, data)` blocks of an extra field.
///
/// APPNOTE 4.5.1: "header1+data1 + header2+data2 . . . Each header MUST consist of:
/// Header ID - 2 bytes, Data Size - 2 bytes". A trailing partial block is ignored.
fn extra_blocks(extra: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut fields = Fields::new(extra);
    std::iter::from_fn(move || {
        let id = fields.u16()?;
        let len = fields.u16()?;
        Some((id, fields.take(usize::from(len))?))
    })
}

// ---------------------------------------------------------------------------------------------
// End of central directory
// ---------------------------------------------------------------------------------------------

/// Where the central directory is, from the (zip64) end of central directory record.
#[derive(Debug, Clone, Copy)]
struct DirectoryLayout {
    /// Offset of the first central directory header.
    offset: u64,
    /// Size of the central directory in bytes.
    size: u64,
    /// Declared number of entries.
    entries: u64,
    /// Whether the counts came from a zip64 record (then they must match exactly).
    zip64: bool,
}

/// APPNOTE 4.3.16 End of central directory record:
///
/// ```text
/// end of central dir signature    4 bytes  (0x06054b50)
/// number of this disk             2 bytes
/// number of the disk with the
/// start of the central directory  2 bytes
/// total number of entries in the
/// central directory on this disk  2 bytes
/// total number of entries in
/// the central directory           2 bytes
/// size of the central directory   4 bytes
/// offset of start of central
/// directory with respect to
/// the starting disk number        4 bytes
/// .ZIP file comment length        2 bytes
/// ```
#[derive(Debug, Clone, Copy)]
struct Eocd {
    disk: u16,
    directory_disk: u16,
    entries: u16,
    directory_size: u32,
    directory_offset: u32,
}

fn parse_eocd(record: &[u8]) -> Option<Eocd> {
    let mut f = Fields::new(record);
    if f.u32()? != EOCD_SIG {
        return None;
    }
    let disk = f.u16()?;
    let directory_disk = f.u16()?;
    let _entries_on_disk = f.u16()?;
    let entries = f.u16()?;
    let directory_size = f.u32()?;
    let directory_offset = f.u32()?;
    Some(Eocd {
        disk,
        directory_disk,
        entries,
        directory_size,
        directory_offset,
    })
}

/// Find the end of central directory record in `tail` (the last bytes of the file).
///
/// APPNOTE 4.3.16 puts it last, followed only by the ".ZIP file comment (variable size)", so
/// we scan backwards for the signature. A record whose comment ends exactly at end of file is
/// preferred; with `lenient`, one followed by stray trailing bytes is accepted too.
fn scan_for_eocd(tail: &[u8], lenient: bool) -> Option<usize> {
    let last = tail.len().checked_sub(EOCD_LEN)?;
    let sig = EOCD_SIG.to_le_bytes();
    let candidates = (0..=last).rev().filter(|&p| tail[p..p + 4] == sig);
    let record_end =
        |p: usize| p + EOCD_LEN + usize::from(u16::from_le_bytes([tail[p + 20], tail[p + 21]]));
    let mut fallback = None;
    for p in candidates {
        let end = record_end(p);
        if end == tail.len() {
            return Some(p);
        }
        if lenient && end < tail.len() && fallback.is_none() {
            fallback = Some(p);
        }
    }
    fallback
}

/// Read `len` bytes at `offset` into a new buffer.
fn read_vec_at(wheel: &Path, file: &File, offset: u64, len: u64) -> Result<Vec<u8>, WheelError> {
    let len = usize::try_from(len)
        .map_err(|_| WheelError::malformed(wheel, "a structure is too large for this platform"))?;
    let mut buf = vec![0; len];
    read_exact_at(file, &mut buf, offset).map_err(|e| WheelError::io(wheel, None, e))?;
    Ok(buf)
}

/// Locate the end of central directory record; returns its offset and contents.
fn find_eocd(wheel: &Path, file: &File, file_len: u64) -> Result<(u64, Eocd), WheelError> {
    let windows = [SMALL_TAIL, (EOCD_LEN + MAX_COMMENT_LEN) as u64];
    for (attempt, window) in windows.into_iter().enumerate() {
        let len = window.min(file_len);
        let start = file_len - len;
        let tail = read_vec_at(wheel, file, start, len)?;
        let lenient = attempt == windows.len() - 1 || len == file_len;
        if let Some(pos) = scan_for_eocd(&tail, lenient) {
            let eocd = parse_eocd(&tail[pos..]).ok_or_else(|| {
                WheelError::malformed(wheel, "the end of central directory record is truncated")
            })?;
            return Ok((start + pos as u64, eocd));
        }
        if len == file_len {
            break;
        }
    }
    Err(WheelError::malformed(
        wheel,
        "no end of central directory record was found: the file is not a zip archive or is truncated",
    ))
}

/// Read the zip64 records if a locator precedes the EOCD record at `eocd_pos`.
///
/// APPNOTE 4.3.15 Zip64 end of central directory locator (immediately before the EOCD record):
///
/// ```text
/// zip64 end of central dir locator
/// signature                       4 bytes  (0x07064b50)
/// number of the disk with the
/// start of the zip64 end of
/// central directory               4 bytes
/// relative offset of the zip64
/// end of central directory record 8 bytes
/// total number of disks           4 bytes
/// ```
///
/// Returns `None` when there is no locator.
fn find_zip64_layout(
    wheel: &Path,
    file: &File,
    eocd_pos: u64,
) -> Result<Option<(u64, DirectoryLayout)>, WheelError> {
    let Some(locator_pos) = eocd_pos.checked_sub(ZIP64_LOCATOR_LEN as u64) else {
        return Ok(None);
    };
    let locator = read_vec_at(wheel, file, locator_pos, ZIP64_LOCATOR_LEN as u64)?;
    let mut f = Fields::new(&locator);
    if f.u32() != Some(ZIP64_LOCATOR_SIG) {
        return Ok(None);
    }
    let truncated = || {
        WheelError::malformed(
            wheel,
            "the zip64 end of central directory locator is truncated",
        )
    };
    let record_disk = f.u32().ok_or_else(truncated)?;
    let record_pos = f.u64().ok_or_else(truncated)?;
    let disks = f.u32().ok_or_else(truncated)?;
    if record_disk != 0 || disks > 1 {
        return Err(WheelError::malformed(
            wheel,
            "it is a multi-disk (spanned) archive",
        ));
    }
    let fits = record_pos
        .checked_add(ZIP64_EOCD_LEN as u64)
        .is_some_and(|end| end <= locator_pos);
    if !fits {
        return Err(WheelError::malformed(
            wheel,
            "the zip64 end of central directory locator points outside the file",
        ));
    }
    let record = read_vec_at(wheel, file, record_pos, ZIP64_EOCD_LEN as u64)?;
    let layout = parse_zip64_eocd(&record).ok_or_else(|| {
        WheelError::malformed(
            wheel,
            "the zip64 end of central directory record is missing or damaged",
        )
    })?;
    Ok(Some((record_pos, layout)))
}

/// APPNOTE 4.3.14 Zip64 end of central directory record:
///
/// ```text
/// zip64 end of central dir
/// signature                       4 bytes  (0x06064b50)
/// size of zip64 end of central
/// directory record                8 bytes
/// version made by                 2 bytes
/// version needed to extract       2 bytes
/// number of this disk             4 bytes
/// number of the disk with the
/// start of the central directory  4 bytes
/// total number of entries in the
/// central directory on this disk  8 bytes
/// total number of entries in the
/// central directory               8 bytes
/// size of the central directory   8 bytes
/// offset of start of central
/// directory with respect to
/// the starting disk number        8 bytes
/// ```
fn parse_zip64_eocd(record: &[u8]) -> Option<DirectoryLayout> {
    let mut f = Fields::new(record);
    if f.u32()? != ZIP64_EOCD_SIG {
        return None;
    }
    let _record_size = f.u64()?;
    let _made_by = f.u16()?;
    let _needed = f.u16()?;
    let disk = f.u32()?;
    let directory_disk = f.u32()?;
    if disk != 0 || directory_disk != 0 {
        return None;
    }
    let _entries_on_disk = f.u64()?;
    let entries = f.u64()?;
    let size = f.u64()?;
    let offset = f.u64()?;
    Some(DirectoryLayout {
        offset,
        size,
        entries,
        zip64: true,
    })
}

/// Find and bounds-check the central directory.
fn find_central_directory(
    wheel: &Path,
    file: &File,
    file_len: u64,
) -> Result<DirectoryLayout, WheelError> {
    let (eocd_pos, eocd) = find_eocd(wheel, file, file_len)?;
    let (directory_end_limit, layout) = match find_zip64_layout(wheel, file, eocd_pos)? {
        Some((record_pos, layout)) => (record_pos, layout),
        None => {
            if eocd.disk != 0 || eocd.directory_disk != 0 {
                return Err(WheelError::malformed(
                    wheel,
                    "it is a multi-disk (spanned) archive",
                ));
            }
            if eocd.entries == 0xFFFF
                || eocd.directory_size == 0xFFFF_FFFF
                || eocd.directory_offset == 0xFFFF_FFFF
            {
                return Err(WheelError::malformed(
                    wheel,
                    "the end record asks for zip64 values but there is no zip64 locator",
                ));
            }
            let layout = DirectoryLayout {
                offset: u64::from(eocd.directory_offset),
                size: u64::from(eocd.directory_size),
                entries: u64::from(eocd.entries),
                zip64: false,
            };
            (eocd_pos, layout)
        }
    };
    let inside = layout
        .offset
        .checked_add(layout.size)
        .is_some_and(|end| end <= directory_end_limit);
    if !inside {
        return Err(WheelError::malformed(
            wheel,
            format!(
                "the central directory ({} bytes at offset {}) does not fit before its end record at offset {directory_end_limit}; the file is truncated or damaged",
                layout.size, layout.offset
            ),
        ));
    }
    Ok(layout)
}

// ---------------------------------------------------------------------------------------------
// Central directory entries
// ---------------------------------------------------------------------------------------------

/// One raw central directory file header.
///
/// APPNOTE 4.3.12 Central directory structure, `[central directory header n]`:
///
/// ```text
/// central file header signature   4 bytes  (0x02014b50)
/// version made by                 2 bytes
/// version needed to extract       2 bytes
/// general purpose bit flag        2 bytes
/// compression method              2 bytes
/// last mod file time              2 bytes
/// last mod file date              2 bytes
/// crc-32                          4 bytes
/// compressed size                 4 bytes
/// uncompressed size               4 bytes
/// file name length                2 bytes
/// extra field length              2 bytes
/// file comment length             2 bytes
/// disk number start               2 bytes
/// internal file attributes        2 bytes
/// external file attributes        4 bytes
/// relative offset of local header 4 bytes
///
/// file name (variable size)
/// extra field (variable size)
/// file comment (variable size)
/// ```
struct CentralHeader<'a> {
    made_by: u16,
    flags: u16,
    method: u16,
    dos_time: u16,
    dos_date: u16,
    crc32: u32,
    compressed_size: u64,
    size: u64,
    disk_start: u32,
    external_attributes: u32,
    header_offset: u64,
    name: &'a [u8],
    extra: &'a [u8],
}

/// Parse one central directory header; `None` if the directory ends inside it.
/// `Some(Err(()))` if the signature is wrong.
fn parse_central_header<'a>(f: &mut Fields<'a>) -> Option<Result<CentralHeader<'a>, ()>> {
    if f.u32()? != CENTRAL_HEADER_SIG {
        return Some(Err(()));
    }
    let made_by = f.u16()?;
    let _needed = f.u16()?;
    let flags = f.u16()?;
    let method = f.u16()?;
    let dos_time = f.u16()?;
    let dos_date = f.u16()?;
    let crc32 = f.u32()?;
    let compressed_size = u64::from(f.u32()?);
    let size = u64::from(f.u32()?);
    let name_len = usize::from(f.u16()?);
    let extra_len = usize::from(f.u16()?);
    let comment_len = usize::from(f.u16()?);
    let disk_start = u32::from(f.u16()?);
    let _internal_attributes = f.u16()?;
    let external_attributes = f.u32()?;
    let header_offset = u64::from(f.u32()?);
    let name = f.take(name_len)?;
    let extra = f.take(extra_len)?;
    let _comment = f.take(comment_len)?;
    Some(Ok(CentralHeader {
        made_by,
        flags,
        method,
        dos_time,
        dos_date,
        crc32,
        compressed_size,
        size,
        disk_start,
        external_attributes,
        header_offset,
        name,
        extra,
    }))
}

impl CentralHeader<'_> {
    /// Replace saturated 32-bit fields with their zip64 values.
    ///
    /// APPNOTE 4.5.3 Zip64 Extended Information Extra Field (0x0001): "Original Size 8 bytes,
    /// Compressed Size 8 bytes, Relative Header Offset 8 bytes, Disk Start Number 4 bytes ...
    /// The order of the fields in the zip64 extended information record is fixed, but the
    /// fields MUST only appear if the corresponding Local or Central directory record field is
    /// set to 0xFFFF or 0xFFFFFFFF."
    fn apply_zip64(&mut self) -> Result<(), &'static str> {
        let needs_size = self.size == 0xFFFF_FFFF;
        let needs_compressed = self.compressed_size == 0xFFFF_FFFF;
        let needs_offset = self.header_offset == 0xFFFF_FFFF;
        let needs_disk = self.disk_start == 0xFFFF;
        if !(needs_size || needs_compressed || needs_offset || needs_disk) {
            return Ok(());
        }
        let (_, data) = extra_blocks(self.extra)
            .find(|(id, _)| *id == EXTRA_ZIP64)
            .ok_or("has 32-bit sizes or offset saturated at 0xFFFFFFFF but no zip64 extra field")?;
        let mut f = Fields::new(data);
        let short = "has a zip64 extra field too short for the values it must hold";
        if needs_size {
            self.size = f.u64().ok_or(short)?;
        }
        if needs_compressed {
            self.compressed_size = f.u64().ok_or(short)?;
        }
        if needs_offset {
            self.header_offset = f.u64().ok_or(short)?;
        }
        if needs_disk {
            self.disk_start = f.u32().ok_or(short)?;
        }
        Ok(())
    }

    fn host(&self) -> u8 {
        // APPNOTE 4.4.2.1: "The upper byte indicates the compatibility of the file attribute
        // information. ... 3 - UNIX ... 19 - OS X (Darwin)".
        (self.made_by >> 8) as u8
    }

    /// Unix `st_mode` from the high 16 bits of the external attributes, when made on Unix.
    fn unix_mode(&self) -> u32 {
        match self.host() {
            HOST_UNIX | HOST_OSX => self.external_attributes >> 16,
            _ => 0,
        }
    }

    /// Modification time: the Info-ZIP extended timestamp if present, else the DOS fields.
    fn mtime(&self) -> SystemTime {
        extended_timestamp(self.extra)
            .unwrap_or_else(|| dos_to_system_time(self.dos_date, self.dos_time))
    }
}

/// Info-ZIP "UT" extended timestamp (0x5455), central-header form: "Flags 1 byte (bit 0: if
/// set, modification time is present), ModTime 4 bytes (time of last modification, UTC/GMT,
/// signed seconds since the Unix epoch)".
fn extended_timestamp(extra: &[u8]) -> Option<SystemTime> {
    let (_, data) = extra_blocks(extra).find(|(id, _)| *id == EXTRA_EXTENDED_TIMESTAMP)?;
    let mut f = Fields::new(data);
    let flags = f.u8()?;
    if flags & 1 == 0 {
        return None;
    }
    let secs = i64::from(f.u32()? as i32);
    Some(if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    })
}

/// APPNOTE 4.4.6 "last mod file time / date ... stored in standard MS-DOS format": date bits
/// 0-4 day, 5-8 month, 9-15 years since 1980; time bits 0-4 seconds/2, 5-10 minutes, 11-15
/// hours. Read as UTC; out-of-range fields are clamped.
fn dos_to_system_time(date: u16, time: u16) -> SystemTime {
    let year = 1980 + i64::from(date >> 9);
    let month = i64::from((date >> 5) & 0xF).clamp(1, 12);
    let day = i64::from(date & 0x1F).max(1);
    let hours = i64::from(time >> 11).min(23);
    let minutes = i64::from((time >> 5) & 0x3F).min(59);
    let seconds = (i64::from(time & 0x1F) * 2).min(59);
    let secs = days_from_civil(year, month, day) * 86_400 + hours * 3600 + minutes * 60 + seconds;
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// IBM code page 437, bytes 0x80..=0xFF (0x00..=0x7F are ASCII).
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

/// Decode a raw member name.
///
/// APPNOTE 4.4.4 bit 11: "Language encoding flag (EFS). If this bit is set, the filename and
/// comment fields for this file MUST be encoded using UTF-8." Without it the name is IBM code
/// page 437 (APPNOTE appendix D), which is also how Python's `zipfile` (and so pip) reads it.
fn decode_name(raw: &[u8], utf8: bool) -> Result<String, String> {
    if utf8 || raw.is_ascii() {
        return String::from_utf8(raw.to_vec())
            .map_err(|_| "is flagged as UTF-8 but its name is not valid UTF-8".to_owned());
    }
    let high: Vec<char> = CP437_HIGH.chars().collect();
    Ok(raw
        .iter()
        .map(|&b| {
            if b < 0x80 {
                char::from(b)
            } else {
                high[usize::from(b - 0x80)]
            }
        })
        .collect())
}

/// A name split into its normalized relative path and whether it named a directory.
struct NormalizedName {
    path: String,
    trailing_slash: bool,
}

/// Validate a decoded member name and normalize it: no empty, `.` components; refuse anything
/// that is absolute, uses `\`, contains NUL or a `..` component.
fn normalize_name(name: &str) -> Result<NormalizedName, &'static str> {
    if name.is_empty() {
        return Err("has an empty name");
    }
    if name.contains('\0') {
        return Err("has a NUL byte in its name");
    }
    if name.contains('\\') {
        return Err(
            "has a backslash in its name (zip member names use '/'; a backslash may be read as a Windows path separator)",
        );
    }
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    if has_drive_prefix(name) {
        return Err("is an absolute Windows path (it starts with a drive letter)");
    }
    let mut path = String::with_capacity(name.len());
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err("has a '..' component, which would escape the wheel"),
            _ if component.len() > MAX_NAME_LEN => {
                return Err("has a path component longer than 255 bytes, the most a filesystem allows (NAME_MAX)")
            }
            _ => {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(component);
            }
        }
    }
    Ok(NormalizedName {
        path,
        trailing_slash: name.ends_with('/'),
    })
}

/// `C:`-style prefix (absolute or drive-relative on Windows).
fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

// ---------------------------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------------------------

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    File,
    Dir,
    Symlink,
}

impl fmt::Display for MemberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberKind::File => "file",
            MemberKind::Dir => "directory",
            MemberKind::Symlink => "symlink",
        })
    }
}

/// How a member's data is stored in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Stored,
    Deflated,
}

/// One explicit entry of a wheel's central directory. Directories that are only implied by
/// deeper names (`a/b.py` implies `a`) have no `Member`.
#[derive(Debug)]
pub struct Member {
    /// Validated relative path: '/'-separated, no leading or trailing '/', no empty, `.` or
    /// `..` components.
    /// (boxed: no spare capacity, and 8 bytes less in each of a wheel's members)
    pub name: Box<str>,
    pub kind: MemberKind,
    /// Uncompressed size in bytes (0 for directories; the target length for symlinks).
    pub size: u64,
    /// Permission bits only: 0o644 or 0o755 for files (0o755 when the Unix attributes have any
    /// exec bit, as pip does), 0o755 for directories, 0o777 for symlinks.
    pub mode: u32,
    /// From the extended-timestamp extra field if present, else the DOS date/time as UTC.
    pub mtime: SystemTime,
    method: Method,
    compressed_size: u64,
    crc32: u32,
    /// Offset of the local file header.
    header_offset: u64,
    /// Length of the name in the central header; the local header must agree.
    raw_name_len: u16,
    /// The member's data must end at or before this offset (next local header, or the
    /// central directory).
    data_limit: u64,
    /// Offset of the member's data, found from the local header on first use.
    data_offset: AtomicU64,
    /// Set once a stored member's bytes passed their size and CRC-32 check.
    verified: AtomicBool,
}

impl Member {
    /// Whether reading the member needs decompression (false: served in place).
    pub fn is_compressed(&self) -> bool {
        self.method == Method::Deflated
    }

    /// Size of the member's data inside the archive.
    pub fn compressed_size(&self) -> u64 {
        self.compressed_size
    }
}

/// Turn one central header into a `Member` (or `None` for an entry naming the root, `./`).
fn member_from_header(
    wheel: &Path,
    mut h: CentralHeader<'_>,
) -> Result<Option<Member>, WheelError> {
    let display_name = String::from_utf8_lossy(h.name).into_owned();
    let decoded = decode_name(h.name, h.flags & FLAG_UTF8 != 0)
        .map_err(|why| WheelError::unsafe_member(wheel, &display_name, why))?;
    let normalized =
        normalize_name(&decoded).map_err(|why| WheelError::unsafe_member(wheel, &decoded, why))?;
    h.apply_zip64()
        .map_err(|why| WheelError::corrupt(wheel, &decoded, why))?;
    if h.disk_start != 0 {
        return Err(WheelError::malformed(
            wheel,
            "it is a multi-disk (spanned) archive",
        ));
    }
    let method = check_method(wheel, &decoded, &h)?;
    let kind = member_kind(wheel, &decoded, &h, normalized.trailing_slash)?;
    if normalized.path.is_empty() {
        return match kind {
            MemberKind::Dir => Ok(None),
            _ => Err(WheelError::unsafe_member(
                wheel,
                &decoded,
                "names the wheel root itself",
            )),
        };
    }
    check_sizes(wheel, &decoded, method, &h)?;
    let unix_mode = h.unix_mode();
    let mode = match kind {
        MemberKind::Dir => 0o755,
        MemberKind::Symlink => 0o777,
        MemberKind::File if unix_mode & 0o111 != 0 => 0o755,
        MemberKind::File => 0o644,
    };
    Ok(Some(Member {
        name: normalized.path.into_boxed_str(),
        kind,
        size: if kind == MemberKind::Dir { 0 } else { h.size },
        mode,
        mtime: h.mtime(),
        method,
        compressed_size: h.compressed_size,
        crc32: h.crc32,
        header_offset: h.header_offset,
        raw_name_len: h.name.len() as u16,
        data_limit: 0,
        data_offset: AtomicU64::new(0),
        verified: AtomicBool::new(false),
    }))
}

/// Refuse encryption and compression methods other than stored and deflated.
///
/// APPNOTE 4.4.4 bit 0: "If set, indicates that the file is encrypted"; bit 6: "Strong
/// encryption"; bit 13: "Set when encrypting the Central Directory". APPNOTE 4.4.5
/// compression method: "0 - The file is stored (no compression) ... 8 - The file is Deflated
/// ... 99 - AE-x encryption marker".
fn check_method(wheel: &Path, name: &str, h: &CentralHeader<'_>) -> Result<Method, WheelError> {
    let encrypted = FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_CENTRAL_DIRECTORY;
    if h.flags & encrypted != 0 || h.method == METHOD_AES {
        return Err(WheelError::unsupported(wheel, name, "is encrypted"));
    }
    match h.method {
        METHOD_STORED => Ok(Method::Stored),
        METHOD_DEFLATED => Ok(Method::Deflated),
        other => Err(WheelError::unsupported(
            wheel,
            name,
            format!(
                "uses compression method {other} ({}); only stored (0) and deflated (8) are supported",
                method_name(other)
            ),
        )),
    }
}

fn method_name(method: u16) -> &'static str {
    match method {
        1 => "shrunk",
        2..=5 => "reduced",
        6 => "imploded",
        9 => "deflate64",
        12 => "bzip2",
        14 => "LZMA",
        93 => "zstd",
        95 => "xz",
        98 => "PPMd",
        _ => "unknown",
    }
}

/// Directory if the name ends in '/' (as Python's `zipfile` decides); symlink if made on Unix
/// with `S_IFLNK`; file otherwise. Other Unix file types (devices, FIFOs, sockets) are refused.
fn member_kind(
    wheel: &Path,
    name: &str,
    h: &CentralHeader<'_>,
    trailing_slash: bool,
) -> Result<MemberKind, WheelError> {
    if trailing_slash {
        return Ok(MemberKind::Dir);
    }
    match h.unix_mode() & S_IFMT {
        // A directory mode on a name without '/' is a file to Python's zipfile (pip writes
        // an empty file), so it is one here too.
        0 | S_IFREG | S_IFDIR => Ok(MemberKind::File),
        S_IFLNK => Ok(MemberKind::Symlink),
        other => Err(WheelError::unsupported(
            wheel,
            name,
            format!("is a special file (Unix file type {other:#o})"),
        )),
    }
}

/// Sizes that cannot be true: stored sizes that differ, impossible deflate ratios.
fn check_sizes(
    wheel: &Path,
    name: &str,
    method: Method,
    h: &CentralHeader<'_>,
) -> Result<(), WheelError> {
    match method {
        Method::Stored if h.size != h.compressed_size => Err(WheelError::corrupt(
            wheel,
            name,
            format!(
                "is stored (uncompressed) but declares {} bytes of data for {} bytes of content",
                h.compressed_size, h.size
            ),
        )),
        Method::Deflated
            if h.size
                > h.compressed_size
                    .saturating_mul(MAX_DEFLATE_RATIO)
                    .saturating_add(64) =>
        {
            Err(WheelError::corrupt(
                wheel,
                name,
                format!(
                    "declares {} bytes inflated from {} compressed bytes, more than deflate can produce",
                    h.size, h.compressed_size
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Parse all central directory headers into members.
fn parse_central_directory(
    wheel: &Path,
    directory: &[u8],
    layout: &DirectoryLayout,
) -> Result<Vec<Member>, WheelError> {
    let capacity = layout
        .entries
        .min((directory.len() / CENTRAL_HEADER_LEN) as u64);
    let mut members = Vec::with_capacity(capacity as usize);
    let mut f = Fields::new(directory);
    let mut parsed: u64 = 0;
    while !f.buf.is_empty() {
        let header = match parse_central_header(&mut f) {
            Some(Ok(header)) => header,
            Some(Err(())) => {
                return Err(WheelError::malformed(
                    wheel,
                    format!("central directory entry #{parsed} has a bad signature"),
                ));
            }
            None => {
                return Err(WheelError::malformed(
                    wheel,
                    format!("the central directory is truncated inside entry #{parsed}"),
                ));
            }
        };
        parsed += 1;
        if let Some(member) = member_from_header(wheel, header)? {
            members.push(member);
        }
    }
    // Without zip64 the 16-bit count wraps for archives of more than 65,535 entries.
    let count_ok = if layout.zip64 {
        parsed == layout.entries
    } else {
        parsed & 0xFFFF == layout.entries
    };
    if !count_ok {
        return Err(WheelError::malformed(
            wheel,
            format!(
                "the central directory holds {parsed} entries but its end record declares {}",
                layout.entries
            ),
        ));
    }
    Ok(members)
}

/// Check that no two members' local headers and data overlap and that all lie before the
/// central directory; record for each member the offset its data must not pass.
///
/// This is a lower bound at open time (local header of 30 bytes + the central name length +
/// compressed size); the exact end is checked when the local header is read. It rules out
/// archives whose entries share compressed data ("overlapping-file" zip bombs) and offsets
/// pointing outside the file.
fn assign_data_limits(
    wheel: &Path,
    members: &mut [Member],
    directory_offset: u64,
) -> Result<(), WheelError> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_unstable_by_key(|&i| members[i].header_offset);
    for (rank, &i) in order.iter().enumerate() {
        let next = order.get(rank + 1).copied();
        let limit = next.map_or(directory_offset, |j| members[j].header_offset);
        let m = &members[i];
        let end = m
            .header_offset
            .checked_add(LOCAL_HEADER_LEN + u64::from(m.raw_name_len))
            .and_then(|v| v.checked_add(m.compressed_size));
        let fits = end.is_some_and(|end| end <= limit);
        if !fits {
            let why = match next {
                Some(j) if limit < directory_offset => {
                    format!("overlaps member {:?} in the archive", members[j].name)
                }
                _ => format!(
                    "has its data ({} bytes at offset {}) outside the archive's data area (which ends at {directory_offset})",
                    m.compressed_size, m.header_offset
                ),
            };
            return Err(WheelError::corrupt(wheel, &m.name, why));
        }
        members[i].data_limit = limit;
    }
    Ok(())
}

/// Refuse duplicate names and members nested under a file or symlink; drop repeated
/// directory entries (harmless).
fn check_unique_names(wheel: &Path, members: &mut Vec<Member>) -> Result<(), WheelError> {
    let mut repeated_dirs = Vec::new();
    {
        let mut seen: HashMap<&str, MemberKind> = HashMap::with_capacity(members.len());
        for (i, m) in members.iter().enumerate() {
            match seen.entry(&*m.name) {
                Entry::Vacant(slot) => {
                    slot.insert(m.kind);
                }
                Entry::Occupied(slot) => {
                    let first = *slot.get();
                    if first == MemberKind::Dir && m.kind == MemberKind::Dir {
                        repeated_dirs.push(i);
                    } else {
                        return Err(WheelError::unsafe_member(
                            wheel,
                            &m.name,
                            format!(
                                "appears twice in the archive (as a {first} and as a {})",
                                m.kind
                            ),
                        ));
                    }
                }
            }
        }
        // Names differing only in case are one file on case-insensitive filesystems
        // (Windows, macOS): installing such a wheel there loses one of them, silently.
        let mut folded: HashMap<String, &str> = HashMap::with_capacity(members.len());
        for m in members.iter() {
            let prefixes = m
                .name
                .match_indices('/')
                .map(|(slash, _)| &m.name[..slash])
                .chain(std::iter::once(&*m.name));
            for path in prefixes {
                match folded.entry(path.to_lowercase()) {
                    Entry::Vacant(slot) => {
                        slot.insert(path);
                    }
                    Entry::Occupied(slot) if *slot.get() != path => {
                        return Err(WheelError::unsafe_member(
                            wheel,
                            path,
                            format!(
                                "differs only in case from {:?}, which the same wheel contains; they would be one file on a case-insensitive filesystem",
                                slot.get()
                            ),
                        ));
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
        for m in members.iter() {
            for (slash, _) in m.name.match_indices('/') {
                let parent = &m.name[..slash];
                match seen.get(parent) {
                    Some(&kind) if kind != MemberKind::Dir => {
                        return Err(WheelError::unsafe_member(
                            wheel,
                            &m.name,
                            format!(
                                "lies inside {parent:?}, which the same wheel also contains as a {kind}"
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    if !repeated_dirs.is_empty() {
        debug!(wheel = %wheel.display(), count = repeated_dirs.len(), "dropping repeated directory entries");
        let mut index = 0;
        let mut drop_next = repeated_dirs.into_iter().peekable();
        members.retain(|_| {
            let keep = drop_next.peek() != Some(&index);
            if !keep {
                drop_next.next();
            }
            index += 1;
            keep
        });
    }
    Ok(())
}

/// Check a symlink target: relative, no NUL or backslash, and resolving (relative to the link's
/// directory) inside the wheel. A `..` that would step back out of another symlink of this
/// wheel is refused, since lexical resolution cannot follow it.
fn check_symlink_target(link: &str, target: &str, symlinks: &HashSet<&str>) -> Result<(), String> {
    if target.is_empty() {
        return Err("is a symlink with an empty target".to_owned());
    }
    if target.contains('\0') || target.contains('\\') {
        return Err(format!(
            "is a symlink to {target:?}, which contains a NUL or backslash"
        ));
    }
    if target.starts_with('/') || has_drive_prefix(target) {
        return Err(format!("is a symlink to the absolute path {target:?}"));
    }
    let mut stack: Vec<&str> = link.split('/').collect();
    stack.pop(); // the link itself
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                let here = stack.join("/");
                if symlinks.contains(here.as_str()) {
                    return Err(format!(
                        "is a symlink to {target:?}, which steps out of the symlink {here:?} with '..'"
                    ));
                }
                if stack.pop().is_none() {
                    return Err(format!(
                        "is a symlink to {target:?}, which escapes the wheel root"
                    ));
                }
            }
            name => stack.push(name),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// WheelArchive
// ---------------------------------------------------------------------------------------------

static NEXT_ARCHIVE_ID: AtomicU64 = AtomicU64::new(1);

/// An opened, validated wheel. Cheap to share (`Arc`); all reads are positional.
#[derive(Debug)]
pub struct WheelArchive {
    id: u64,
    path: PathBuf,
    file: Arc<File>,
    members: Vec<Member>,
    /// The validated targets of symlink members, read at open, by member index (in order;
    /// real wheels have none, so they are not a field of every member).
    link_targets: Vec<(usize, Box<str>)>,
}

impl WheelArchive {
    /// Open and validate a wheel, reading only its end records and central directory (plus
    /// the targets of symlink members, which must be checked before the wheel is accepted;
    /// real wheels have none).
    pub fn open(path: &Path) -> Result<WheelArchive, WheelError> {
        let started = Instant::now();
        let file = File::open(path).map_err(|e| WheelError::io(path, None, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| WheelError::io(path, None, e))?
            .len();
        let layout = find_central_directory(path, &file, file_len)?;
        let directory = read_vec_at(path, &file, layout.offset, layout.size)?;
        let mut members = parse_central_directory(path, &directory, &layout)?;
        drop(directory);
        assign_data_limits(path, &mut members, layout.offset)?;
        check_unique_names(path, &mut members)?;
        let mut archive = WheelArchive {
            id: NEXT_ARCHIVE_ID.fetch_add(1, Ordering::Relaxed),
            path: path.to_owned(),
            file: Arc::new(file),
            members,
            link_targets: Vec::new(),
        };
        archive.load_symlink_targets()?;
        debug!(
            wheel = %path.display(),
            members = archive.members.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "opened wheel"
        );
        Ok(archive)
    }

    /// The wheel file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A process-unique identity of this opened archive (cache key).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// All explicit members, in central directory order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The target of symlink member `index` (validated and read at open).
    pub fn symlink_target(&self, index: usize) -> Result<String, WheelError> {
        let member = self.member(index)?;
        match self.link_targets.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => Ok(self.link_targets[at].1.to_string()),
            Err(_) => Err(self.wrong_kind(member, "symlink")),
        }
    }

    fn member(&self, index: usize) -> Result<&Member, WheelError> {
        self.members
            .get(index)
            .ok_or_else(|| WheelError::NoSuchMember {
                wheel: self.path.clone(),
                index,
                count: self.members.len(),
            })
    }

    fn wrong_kind(&self, member: &Member, wanted: &'static str) -> WheelError {
        WheelError::WrongKind {
            wheel: self.path.clone(),
            member: member.name.to_string(),
            found: member.kind,
            wanted,
        }
    }

    fn corrupt(&self, member: &Member, why: impl Into<String>) -> WheelError {
        WheelError::corrupt(&self.path, &member.name, why)
    }

    /// Offset of member `index`'s data, from its local header (read once, then remembered).
    ///
    /// APPNOTE 4.3.7 Local file header:
    ///
    /// ```text
    /// local file header signature     4 bytes  (0x04034b50)
    /// version needed to extract       2 bytes
    /// general purpose bit flag        2 bytes
    /// compression method              2 bytes
    /// last mod file time              2 bytes
    /// last mod file date              2 bytes
    /// crc-32                          4 bytes
    /// compressed size                 4 bytes
    /// uncompressed size               4 bytes
    /// file name length                2 bytes
    /// extra field length              2 bytes
    ///
    /// file name (variable size)
    /// extra field (variable size)
    /// ```
    ///
    /// The sizes and CRC here may be zero (bit 3, data descriptor); the central directory's
    /// values are used. Only the signature, flags, method and name length are cross-checked.
    fn data_offset(&self, member: &Member) -> Result<u64, WheelError> {
        // (0 until found: data always follows a local header, so it is never at 0)
        match member.data_offset.load(Ordering::Relaxed) {
            0 => {}
            offset => return Ok(offset),
        }
        let mut header = [0u8; LOCAL_HEADER_LEN as usize];
        read_exact_at(&self.file, &mut header, member.header_offset)
            .map_err(|e| WheelError::io(&self.path, Some(&member.name), e))?;
        let mut f = Fields::new(&header);
        let field = |v: Option<u16>| v.unwrap_or_default();
        if f.u32() != Some(LOCAL_HEADER_SIG) {
            return Err(self.corrupt(
                member,
                format!(
                    "has no local file header at offset {}",
                    member.header_offset
                ),
            ));
        }
        let _needed = f.u16();
        let flags = field(f.u16());
        let method = field(f.u16());
        f.take(16); // time, date, crc-32, compressed size, uncompressed size
        let name_len = field(f.u16());
        let extra_len = field(f.u16());
        let expected_method = match member.method {
            Method::Stored => METHOD_STORED,
            Method::Deflated => METHOD_DEFLATED,
        };
        if flags & FLAG_ENCRYPTED != 0
            || method != expected_method
            || name_len != member.raw_name_len
        {
            return Err(self.corrupt(
                member,
                "has a local file header that disagrees with the central directory",
            ));
        }
        let offset =
            member.header_offset + LOCAL_HEADER_LEN + u64::from(name_len) + u64::from(extra_len);
        let fits = offset
            .checked_add(member.compressed_size)
            .is_some_and(|end| end <= member.data_limit);
        if !fits {
            return Err(self.corrupt(
                member,
                "has data that runs into the next member or the central directory",
            ));
        }
        member.data_offset.store(offset, Ordering::Relaxed);
        Ok(offset)
    }

    /// Decompress (or copy) member `index` into `sink`, checking its size and CRC-32.
    /// At most `size + 1` bytes are ever produced, so a lying size cannot blow up memory.
    fn read_member_into<W: Write>(
        &self,
        member: &Member,
        sink: &mut W,
        on_write_error: impl FnOnce(io::Error) -> WheelError,
    ) -> Result<(), WheelError> {
        let start = self.data_offset(member)?;
        let raw = RangeReader {
            file: &self.file,
            pos: start,
            end: start + member.compressed_size,
        };
        let copied = match member.method {
            Method::Stored => copy_checked(raw, member.size, sink),
            Method::Deflated => copy_checked(DeflateDecoder::new(raw), member.size, sink),
        };
        let (produced, crc) = match copied {
            Ok(result) => result,
            Err(CopyError::Write(e)) => return Err(on_write_error(e)),
            Err(CopyError::Read(e)) => return Err(self.read_error(member, e)),
        };
        if produced > member.size {
            return Err(self.corrupt(
                member,
                format!(
                    "decompresses to more than the {} bytes the central directory declares (stopped reading there)",
                    member.size
                ),
            ));
        }
        if produced < member.size {
            return Err(self.corrupt(
                member,
                format!(
                    "decompresses to only {produced} bytes but the central directory declares {}",
                    member.size
                ),
            ));
        }
        if crc != member.crc32 {
            return Err(self.corrupt(
                member,
                format!(
                    "fails its CRC-32 check (computed {crc:08x}, the central directory says {:08x})",
                    member.crc32
                ),
            ));
        }
        Ok(())
    }

    /// Classify a read error: bad deflate data is corruption, anything else is I/O.
    fn read_error(&self, member: &Member, e: io::Error) -> WheelError {
        match e.kind() {
            io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::UnexpectedEof => {
                self.corrupt(member, format!("has an invalid deflate stream ({e})"))
            }
            _ => WheelError::io(&self.path, Some(&member.name), e),
        }
    }

    /// Read and validate every symlink member's target; refuse the wheel if one is unsafe.
    fn load_symlink_targets(&mut self) -> Result<(), WheelError> {
        let links: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].kind == MemberKind::Symlink)
            .collect();
        if links.is_empty() {
            return Ok(());
        }
        let mut targets = Vec::with_capacity(links.len());
        {
            let names: HashSet<&str> = links.iter().map(|&i| &*self.members[i].name).collect();
            for &i in &links {
                let member = &self.members[i];
                let target = self.read_symlink(member)?;
                check_symlink_target(&member.name, &target, &names)
                    .map_err(|why| WheelError::unsafe_member(&self.path, &member.name, why))?;
                targets.push(target);
            }
        }
        self.link_targets = links
            .into_iter()
            .zip(targets.into_iter().map(String::into_boxed_str))
            .collect();
        Ok(())
    }

    fn read_symlink(&self, member: &Member) -> Result<String, WheelError> {
        if member.size > MAX_SYMLINK_TARGET {
            return Err(WheelError::unsafe_member(
                &self.path,
                &member.name,
                format!("is a symlink whose target is {} bytes long", member.size),
            ));
        }
        let mut bytes = Vec::with_capacity(member.size as usize);
        self.read_member_into(member, &mut bytes, |e| {
            WheelError::io(&self.path, Some(&member.name), e)
        })?;
        String::from_utf8(bytes).map_err(|_| {
            WheelError::unsafe_member(
                &self.path,
                &member.name,
                "is a symlink whose target is not UTF-8",
            )
        })
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copy at most `declared + 1` bytes from `src` to `sink`; returns the count and CRC-32.
fn copy_checked<R: Read, W: Write>(
    src: R,
    declared: u64,
    sink: &mut W,
) -> Result<(u64, u32), CopyError> {
    let limit = declared.saturating_add(1);
    let mut src = src.take(limit);
    let mut hasher = crc32fast::Hasher::new();
    let buffer_len = usize::try_from(limit).map_or(COPY_BUFFER, |l| l.min(COPY_BUFFER));
    let mut buf = vec![0u8; buffer_len];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
    Ok((total, hasher.finalize()))
}

mod cache;
pub use cache::*;

#[cfg(test)]
mod tests;
