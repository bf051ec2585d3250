//! Tests of the wheel reader: real PyPI wheels and hand-built hostile archives.

use super::*;
use std::io::Cursor;
use std::sync::Barrier;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ----- helpers ---------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (incompressible-ish), or text (compressible).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    b"import os\nprint('hello wheel')\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn write_wheel(dir: &tempfile::TempDir, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join("demo-1.0-py3-none-any.whl");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<WheelArchive, WheelError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_wheel(&dir, bytes);
    let result = WheelArchive::open(&path);
    (dir, result)
}

fn open_ok(bytes: &[u8]) -> (tempfile::TempDir, Arc<WheelArchive>) {
    let (dir, result) = open_bytes(bytes);
    (dir, Arc::new(result.unwrap()))
}

fn index_of(archive: &WheelArchive, name: &str) -> usize {
    archive
        .members()
        .iter()
        .position(|m| &*m.name == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

fn read_all(data: &MemberData) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = data.read_at(out.len() as u64, 7_777).unwrap();
        if chunk.is_empty() {
            return out;
        }
        out.extend_from_slice(&chunk);
    }
}

fn writer_zip(build: impl FnOnce(&mut ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    build(&mut zip);
    zip.finish().unwrap().into_inner()
}

fn stored() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Stored)
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

fn add(zip: &mut ZipWriter<Cursor<Vec<u8>>>, name: &str, options: SimpleFileOptions, data: &[u8]) {
    zip.start_file(name, options).unwrap();
    zip.write_all(data).unwrap();
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A hand-made entry, for archives the zip writer refuses to produce.
#[derive(Clone)]
struct Raw {
    name: Vec<u8>,
    data: Vec<u8>,
    method: u16,
    crc: u32,
    size: u64,
    flags: u16,
    made_by: u16,
    external: u32,
    dos_date: u16,
    dos_time: u16,
    cd_extra: Vec<u8>,
}

impl Raw {
    fn stored(name: &str, content: &[u8]) -> Raw {
        Raw {
            name: name.as_bytes().to_vec(),
            data: content.to_vec(),
            method: 0,
            crc: crc32fast::hash(content),
            size: content.len() as u64,
            flags: FLAG_UTF8,
            made_by: (3 << 8) | 20,
            external: (S_IFREG | 0o644) << 16,
            dos_date: (1 << 5) | 1,
            dos_time: 0,
            cd_extra: Vec::new(),
        }
    }

    fn file(name: &str, content: &[u8]) -> Raw {
        Raw {
            data: deflate(content),
            method: 8,
            ..Raw::stored(name, content)
        }
    }

    fn dir(name: &str) -> Raw {
        Raw {
            external: (S_IFDIR | 0o755) << 16,
            ..Raw::stored(name, b"")
        }
    }

    fn symlink(name: &str, target: &str) -> Raw {
        Raw {
            external: (S_IFLNK | 0o777) << 16,
            ..Raw::stored(name, target.as_bytes())
        }
    }

    fn named(mut self, name: &[u8]) -> Raw {
        self.name = name.to_vec();
        self
    }
}

fn push16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn push32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn push64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Lay out local headers + data, the central directory and the end records.
fn build_raw(entries: &[Raw], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    let sat32 = |v: u64| if zip64 { 0xFFFF_FFFF } else { v as u32 };
    for e in entries {
        offsets.push(out.len() as u64);
        let mut local_extra = Vec::new();
        if zip64 {
            push16(&mut local_extra, EXTRA_ZIP64);
            push16(&mut local_extra, 16);
            push64(&mut local_extra, e.size);
            push64(&mut local_extra, e.data.len() as u64);
        }
        push32(&mut out, LOCAL_HEADER_SIG);
        push16(&mut out, if zip64 { 45 } else { 20 });
        push16(&mut out, e.flags);
        push16(&mut out, e.method);
        push16(&mut out, e.dos_time);
        push16(&mut out, e.dos_date);
        push32(&mut out, e.crc);
        push32(&mut out, sat32(e.data.len() as u64));
        push32(&mut out, sat32(e.size));
        push16(&mut out, e.name.len() as u16);
        push16(&mut out, local_extra.len() as u16);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&local_extra);
        out.extend_from_slice(&e.data);
    }
    let directory_offset = out.len() as u64;
    for (e, &offset) in entries.iter().zip(&offsets) {
        let mut extra = Vec::new();
        if zip64 {
            push16(&mut extra, EXTRA_ZIP64);
            push16(&mut extra, 24);
            push64(&mut extra, e.size);
            push64(&mut extra, e.data.len() as u64);
            push64(&mut extra, offset);
        }
        extra.extend_from_slice(&e.cd_extra);
        push32(&mut out, CENTRAL_HEADER_SIG);
        push16(&mut out, e.made_by);
        push16(&mut out, if zip64 { 45 } else { 20 });
        push16(&mut out, e.flags);
        push16(&mut out, e.method);
        push16(&mut out, e.dos_time);
        push16(&mut out, e.dos_date);
        push32(&mut out, e.crc);
        push32(&mut out, sat32(e.data.len() as u64));
        push32(&mut out, sat32(e.size));
        push16(&mut out, e.name.len() as u16);
        push16(&mut out, extra.len() as u16);
        push16(&mut out, 0); // comment
        push16(&mut out, 0); // disk
        push16(&mut out, 0); // internal attributes
        push32(&mut out, e.external);
        push32(&mut out, sat32(offset));
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&extra);
    }
    let directory_size = out.len() as u64 - directory_offset;
    if zip64 {
        let record = out.len() as u64;
        push32(&mut out, ZIP64_EOCD_SIG);
        push64(&mut out, 44);
        push16(&mut out, 45);
        push16(&mut out, 45);
        push32(&mut out, 0);
        push32(&mut out, 0);
        push64(&mut out, entries.len() as u64);
        push64(&mut out, entries.len() as u64);
        push64(&mut out, directory_size);
        push64(&mut out, directory_offset);
        push32(&mut out, ZIP64_LOCATOR_SIG);
        push32(&mut out, 0);
        push64(&mut out, record);
        push32(&mut out, 1);
    }
    let count = if zip64 { 0xFFFF } else { entries.len() as u16 };
    push32(&mut out, EOCD_SIG);
    push16(&mut out, 0);
    push16(&mut out, 0);
    push16(&mut out, count);
    push16(&mut out, count);
    push32(&mut out, sat32(directory_size));
    push32(&mut out, sat32(directory_offset));
    push16(&mut out, 0);
    out
}

fn expect_err(bytes: &[u8]) -> WheelError {
    match open_bytes(bytes).1 {
        Ok(archive) => panic!(
            "expected the wheel to be refused, got {:?}",
            archive.members()
        ),
        Err(e) => e,
    }
}

fn cache_in(dir: &tempfile::TempDir, budget: u64, threshold: u64) -> MemberCache {
    MemberCache::new(budget, threshold, dir.path().to_owned())
}

// ----- reading ---------------------------------------------------------------------------

#[test]
fn stored_and_deflated_members_read_at_various_offsets() {
    let payload = noise(100_000, 1);
    let source = text(100_000);
    let bytes = writer_zip(|zip| {
        zip.add_directory("pkg/", stored()).unwrap();
        add(zip, "pkg/stored.bin", stored(), &payload);
        add(zip, "pkg/deflated.py", deflated(), &source);
    });
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    let s = index_of(&archive, "pkg/stored.bin");
    let d = index_of(&archive, "pkg/deflated.py");
    assert_eq!(
        archive.members()[index_of(&archive, "pkg")].kind,
        MemberKind::Dir
    );
    assert!(!archive.members()[s].is_compressed());
    assert!(archive.members()[d].is_compressed());
    for (index, expected) in [(s, &payload), (d, &source)] {
        let data = cache.open(&archive, index).unwrap();
        assert_eq!(archive.members()[index].size, expected.len() as u64);
        for (offset, len) in [
            (0, 10),
            (1, 4096),
            (12_345, 65_536),
            (99_990, 100),
            (99_999, 1),
        ] {
            let got = data.read_at(offset, len).unwrap();
            let end = (offset as usize + len).min(expected.len());
            assert_eq!(
                got,
                expected[offset as usize..end],
                "offset {offset} len {len}"
            );
        }
        assert!(data.read_at(100_000, 5).unwrap().is_empty());
        assert!(data.read_at(u64::MAX, 5).unwrap().is_empty());
        assert_eq!(&read_all(&data), expected);
    }
    assert!(matches!(
        cache.open(&archive, s).unwrap(),
        MemberData::InPlace { .. }
    ));
    assert!(matches!(
        cache.open(&archive, d).unwrap(),
        MemberData::Memory(_)
    ));
    assert_eq!(cache.stats().inflations, 1);
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn empty_members_read_as_empty() {
    let bytes = writer_zip(|zip| {
        add(zip, "empty_stored", stored(), b"");
        add(zip, "empty_deflated", deflated(), b"");
    });
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    for i in 0..2 {
        assert_eq!(archive.members()[i].size, 0);
        let data = cache.open(&archive, i).unwrap();
        assert!(data.read_at(0, 100).unwrap().is_empty());
        assert!(data.read_at(5, 100).unwrap().is_empty());
    }
}

#[test]
fn large_member_spills_to_an_unlinked_file() {
    let big = text(50_000);
    let bytes = writer_zip(|zip| add(zip, "big.py", deflated(), &big));
    let (_wheel_dir, archive) = open_ok(&bytes);
    let spill_dir = tempfile::tempdir().unwrap();
    let cache = cache_in(&spill_dir, 1 << 20, 1_000);
    let data = cache.open(&archive, 0).unwrap();
    let file = data
        .backing_file()
        .expect("a spilled member has a backing file");
    assert!(matches!(data, MemberData::Spilled(_)));
    assert_eq!(file.metadata().unwrap().len(), 50_000);
    assert_eq!(read_all(&data), big);
    assert_eq!(data.read_at(49_990, 100).unwrap(), big[49_990..]);
    // (Windows keeps an open file's name until it is closed)
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_dir(spill_dir.path()).unwrap().count(),
        0,
        "spill files are unlinked"
    );
    let stats = cache.stats();
    assert_eq!((stats.memory_bytes, stats.spilled_bytes), (0, 50_000));
    // Second open is a hit on the same file.
    let again = cache.open(&archive, 0).unwrap();
    assert!(Arc::ptr_eq(&again.backing_file().unwrap(), &file));
    assert_eq!(cache.stats().inflations, 1);
    // Members under the threshold have no backing file.
    let small = writer_zip(|zip| add(zip, "small.py", deflated(), b"x = 1\n"));
    let (_d, small) = open_ok(&small);
    assert!(cache.open(&small, 0).unwrap().backing_file().is_none());
}

#[test]
fn lru_evicts_by_bytes_and_returned_handles_stay_valid() {
    let contents: Vec<Vec<u8>> = (0..6).map(|i| noise(10_000, i)).collect();
    let bytes = writer_zip(|zip| {
        for (i, c) in contents.iter().enumerate() {
            add(zip, &format!("m{i}"), deflated(), c);
        }
    });
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 25_000, 20_000);
    let first = cache.open(&archive, 0).unwrap();
    for i in 1..6 {
        cache.open(&archive, i).unwrap();
        assert!(cache.stats().memory_bytes <= 25_000, "{:?}", cache.stats());
    }
    assert_eq!(cache.stats().memory_bytes, 20_000);
    assert_eq!(
        read_all(&first),
        contents[0],
        "an evicted member's handle still reads"
    );
    // The two most recent stay cached; the first was evicted and is inflated again.
    cache.open(&archive, 5).unwrap();
    assert_eq!(cache.stats().inflations, 6);
    cache.open(&archive, 0).unwrap();
    assert_eq!(cache.stats().inflations, 7);
    cache.forget_archive(&archive);
    assert_eq!(cache.stats().memory_bytes, 0);
}

#[test]
fn member_larger_than_the_budget_spills_even_below_the_threshold() {
    let bytes = writer_zip(|zip| add(zip, "m", deflated(), &noise(5_000, 9)));
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 1_000, 1 << 20);
    assert!(cache.open(&archive, 0).unwrap().backing_file().is_some());
}

#[test]
fn concurrent_opens_decompress_once() {
    let content = noise(300_000, 3);
    let bytes = writer_zip(|zip| add(zip, "m", deflated(), &content));
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    let barrier = Barrier::new(8);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                barrier.wait();
                let data = cache.open(&archive, 0).unwrap();
                assert_eq!(read_all(&data), content);
            });
        }
    });
    assert_eq!(cache.stats().inflations, 1);
    assert_eq!(cache.stats().hits, 7);
}

#[test]
fn symlinks_and_modes_and_times() {
    let mut exec = Raw::stored("bin/tool", b"#!/bin/sh\n");
    exec.external = (S_IFREG | 0o4777) << 16;
    let mut dated = Raw::file("dated.py", b"pass\n");
    // 2020-06-15 12:34:56
    dated.dos_date = ((2020 - 1980) << 9) | (6 << 5) | 15;
    dated.dos_time = (12 << 11) | (34 << 5) | (56 / 2);
    let mut stamped = Raw::file("stamped.py", b"pass\n");
    stamped.cd_extra = [0x55, 0x54, 5, 0, 1].to_vec();
    stamped
        .cd_extra
        .extend_from_slice(&1_600_000_000u32.to_le_bytes());
    let bytes = build_raw(
        &[
            Raw::dir("pkg/"),
            Raw::file("pkg/mod.py", b"x = 1\n"),
            Raw::symlink("pkg/link.py", "mod.py"),
            Raw::symlink("pkg/sub/up", "../../pkg/mod.py"),
            exec,
            dated,
            stamped,
        ],
        false,
    );
    let (dir, archive) = open_ok(&bytes);
    let m = |name| &archive.members()[index_of(&archive, name)];
    assert_eq!((m("pkg").kind, m("pkg").mode), (MemberKind::Dir, 0o755));
    assert_eq!(
        (m("pkg/mod.py").kind, m("pkg/mod.py").mode),
        (MemberKind::File, 0o644)
    );
    assert_eq!(m("bin/tool").mode, 0o755, "exec bits kept, setuid dropped");
    let link = index_of(&archive, "pkg/link.py");
    assert_eq!(
        (m("pkg/link.py").kind, m("pkg/link.py").mode),
        (MemberKind::Symlink, 0o777)
    );
    assert_eq!(archive.symlink_target(link).unwrap(), "mod.py");
    assert_eq!(
        archive
            .symlink_target(index_of(&archive, "pkg/sub/up"))
            .unwrap(),
        "../../pkg/mod.py"
    );
    let err = archive
        .symlink_target(index_of(&archive, "pkg/mod.py"))
        .unwrap_err();
    assert!(matches!(err, WheelError::WrongKind { .. }), "{err}");
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs(m("pkg").mtime), 315_532_800, "1980-01-01T00:00:00Z");
    assert_eq!(
        secs(m("dated.py").mtime),
        1_592_224_496,
        "2020-06-15T12:34:56Z"
    );
    assert_eq!(secs(m("stamped.py").mtime), 1_600_000_000);
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    let err = cache.open(&archive, index_of(&archive, "pkg")).unwrap_err();
    assert!(matches!(err, WheelError::WrongKind { .. }), "{err}");
    let err = cache.open(&archive, 99).unwrap_err();
    assert!(matches!(err, WheelError::NoSuchMember { .. }), "{err}");
}

#[test]
fn writer_symlinks_are_recognised() {
    let bytes = writer_zip(|zip| {
        add(zip, "a/real.txt", deflated(), b"real");
        zip.add_symlink("a/alias.txt", "real.txt", SimpleFileOptions::default())
            .unwrap();
    });
    let (_dir, archive) = open_ok(&bytes);
    let i = index_of(&archive, "a/alias.txt");
    assert_eq!(archive.members()[i].kind, MemberKind::Symlink);
    assert_eq!(archive.symlink_target(i).unwrap(), "real.txt");
}

#[test]
fn names_are_normalized_and_repeated_dirs_dropped() {
    let bytes = build_raw(
        &[
            Raw::dir("./"),
            Raw::dir("a/"),
            Raw::dir("a//"),
            Raw::file("./a/./b.py", b"b"),
            Raw::file("c//d.py", b"d"),
            Raw::dir("e"), // directory mode but no '/': a file, as for pip
        ],
        false,
    );
    let (_dir, archive) = open_ok(&bytes);
    let names: Vec<&str> = archive.members().iter().map(|m| &*m.name).collect();
    assert_eq!(names, ["a", "a/b.py", "c/d.py", "e"]);
    assert_eq!(archive.members()[3].kind, MemberKind::File);
}

#[test]
fn cp437_names_are_decoded_like_python_zipfile() {
    assert_eq!(CP437_HIGH.chars().count(), 128);
    let mut raw = Raw::file("x", b"1").named(b"caf\x82.py");
    raw.flags = 0;
    let (_dir, archive) = open_ok(&build_raw(&[raw.clone()], false));
    assert_eq!(&*archive.members()[0].name, "café.py");
    raw.flags = FLAG_UTF8;
    let err = expect_err(&build_raw(&[raw], false));
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn archive_comments_are_skipped() {
    for comment_len in [10, 5_000, 65_535] {
        let bytes = writer_zip(|zip| {
            add(zip, "a.py", deflated(), b"a = 1\n");
            zip.set_comment("c".repeat(comment_len)).unwrap();
        });
        let (_dir, archive) = open_ok(&bytes);
        assert_eq!(archive.members().len(), 1, "comment of {comment_len} bytes");
    }
}

// ----- zip64 -----------------------------------------------------------------------------

#[test]
fn zip64_records_and_extra_fields_are_read() {
    let content = text(20_000);
    let bytes = build_raw(
        &[
            Raw::file("pkg/a.py", &content),
            Raw::stored("pkg/b.bin", b"stored bytes"),
        ],
        true,
    );
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    assert_eq!(read_all(&cache.open(&archive, 0).unwrap()), content);
    assert_eq!(read_all(&cache.open(&archive, 1).unwrap()), b"stored bytes");
}

#[test]
fn zip_writer_large_file_archives_are_read() {
    let content = noise(70_000, 5);
    let bytes = writer_zip(|zip| {
        add(zip, "big.bin", deflated().large_file(true), &content);
        add(zip, "raw.bin", stored().large_file(true), &content[..1000]);
    });
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    assert_eq!(read_all(&cache.open(&archive, 0).unwrap()), content);
    assert_eq!(read_all(&cache.open(&archive, 1).unwrap()), content[..1000]);
}

// ----- corruption ------------------------------------------------------------------------

fn assert_corrupt(err: WheelError, member: &str, why: &str) {
    let text = err.to_string();
    match &err {
        WheelError::Corrupt { member: m, .. } => assert_eq!(m, member, "{text}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(text.contains(why), "{text:?} should mention {why:?}");
    assert!(text.contains("demo-1.0-py3-none-any.whl"), "{text}");
}

#[test]
fn crc_mismatch_is_corrupt_and_not_cached() {
    let mut bad = Raw::file("pkg/bad.py", &text(5_000));
    bad.crc ^= 1;
    let bytes = build_raw(&[bad, Raw::file("pkg/good.py", b"ok")], false);
    let (dir, archive) = open_ok(&bytes);
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    assert_corrupt(cache.open(&archive, 0).unwrap_err(), "pkg/bad.py", "CRC-32");
    assert_corrupt(cache.open(&archive, 0).unwrap_err(), "pkg/bad.py", "CRC-32");
    assert_eq!(cache.stats().memory_bytes, 0);
    assert_eq!(read_all(&cache.open(&archive, 1).unwrap()), b"ok");
    // The same in a spill file.
    let spill = cache_in(&dir, 1 << 20, 10);
    assert_corrupt(spill.open(&archive, 0).unwrap_err(), "pkg/bad.py", "CRC-32");
}

#[test]
fn damaged_deflate_data_is_corrupt() {
    let mut bad = Raw::file("m.py", &noise(5_000, 7));
    let middle = bad.data.len() / 2;
    bad.data[middle] ^= 0x55;
    let (dir, archive) = open_ok(&build_raw(&[bad], false));
    let err = cache_in(&dir, 1 << 20, 1 << 20)
        .open(&archive, 0)
        .unwrap_err();
    assert!(matches!(err, WheelError::Corrupt { .. }), "{err}");
}

#[test]
fn size_mismatch_is_corrupt() {
    let mut short = Raw::file("short.py", &text(10_000));
    short.size = 9_000; // data inflates to more than declared: stop at 9,001 bytes
    let mut long = Raw::file("long.py", &text(10_000));
    long.size = 11_000;
    let (dir, archive) = open_ok(&build_raw(&[short, long], false));
    let cache = cache_in(&dir, 1 << 20, 1 << 20);
    assert_corrupt(
        cache.open(&archive, 0).unwrap_err(),
        "short.py",
        "more than the 9000 bytes",
    );
    assert_corrupt(
        cache.open(&archive, 1).unwrap_err(),
        "long.py",
        "only 10000 bytes",
    );
    let spill = cache_in(&dir, 1 << 20, 10);
    assert_corrupt(
        spill.open(&archive, 0).unwrap_err(),
        "short.py",
        "more than",
    );
}

#[test]
fn impossible_sizes_are_refused_at_open() {
    let mut bomb = Raw::file("bomb", b"tiny");
    bomb.size = 100_000; // from 6 compressed bytes
    assert_corrupt(
        expect_err(&build_raw(&[bomb], false)),
        "bomb",
        "more than deflate can produce",
    );
    let mut stored = Raw::stored("s", b"abc");
    stored.size = 4;
    assert_corrupt(expect_err(&build_raw(&[stored], false)), "s", "is stored");
}

#[test]
fn bad_local_header_is_corrupt_on_first_read() {
    let mut bytes = build_raw(&[Raw::file("m.py", b"x = 1\n")], false);
    bytes[0] = b'X';
    let (dir, archive) = open_ok(&bytes);
    let err = cache_in(&dir, 1 << 20, 1 << 20)
        .open(&archive, 0)
        .unwrap_err();
    assert_corrupt(err, "m.py", "no local file header");
    // A local header whose method disagrees with the central directory.
    let mut bytes = build_raw(&[Raw::file("m.py", b"x = 1\n")], false);
    bytes[8] = 0;
    let (dir, archive) = open_ok(&bytes);
    let err = cache_in(&dir, 1 << 20, 1 << 20)
        .open(&archive, 0)
        .unwrap_err();
    assert_corrupt(err, "m.py", "disagrees");
}

#[test]
fn overlapping_members_are_refused() {
    // Two central entries sharing one local header and its data.
    let one = build_raw(&[Raw::file("a.py", &text(1000))], false);
    let entry = Raw::file("a.py", &text(1000));
    let local_len = 30 + entry.name.len() + entry.data.len();
    let cd = &one[local_len..one.len() - 22];
    let mut cd2 = cd.to_vec();
    let name_at = 46;
    cd2[name_at] = b'b';
    let mut bytes = one[..local_len].to_vec();
    bytes.extend_from_slice(cd);
    bytes.extend_from_slice(&cd2);
    bytes.extend_from_slice(&EOCD_SIG.to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0, 2, 0, 2, 0]);
    bytes.extend_from_slice(&((cd.len() * 2) as u32).to_le_bytes());
    bytes.extend_from_slice(&(local_len as u32).to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    let err = expect_err(&bytes);
    assert!(err.to_string().contains("overlaps member"), "{err}");
}

#[test]
fn truncated_and_non_zip_files_are_refused() {
    let good = writer_zip(|zip| {
        add(zip, "a.py", deflated(), &text(3_000));
        add(zip, "b.py", deflated(), &text(3_000));
    });
    for cut in [0, 10, 100, good.len() / 2, good.len() - 30, good.len() - 1] {
        let err = expect_err(&good[..cut]);
        assert!(
            matches!(err, WheelError::Malformed { .. }),
            "cut at {cut}: {err}"
        );
        assert!(
            err.to_string().contains("demo-1.0-py3-none-any.whl"),
            "{err}"
        );
    }
    let err = expect_err(&noise(10_000, 11));
    assert!(err.to_string().contains("not a zip archive"), "{err}");
    // A central directory offset pointing past the end of the file.
    let mut bad = good.clone();
    let at = bad.len() - 6;
    bad[at..at + 4].copy_from_slice(&u32::MAX.wrapping_sub(7).to_le_bytes());
    assert!(matches!(expect_err(&bad), WheelError::Malformed { .. }));
    // A central directory that claims more entries than it holds.
    let mut bad = good.clone();
    let at = bad.len() - 12;
    bad[at] = 3;
    assert!(expect_err(&bad).to_string().contains("declares 3"));
    // A member whose local header offset points past the central directory.
    let mut bad = build_raw(&[Raw::file("a.py", b"1"), Raw::file("b.py", b"2")], false);
    let cd_offset =
        u32::from_le_bytes(bad[bad.len() - 6..bad.len() - 2].try_into().unwrap()) as usize;
    bad[cd_offset + 42..cd_offset + 46].copy_from_slice(&1_000_000u32.to_le_bytes());
    assert_corrupt(expect_err(&bad), "a.py", "outside the archive's data area");
}

// ----- untrusted names -------------------------------------------------------------------

fn assert_unsafe(err: WheelError, member: &str, why: &str) {
    let text = err.to_string();
    match &err {
        WheelError::Unsafe { member: m, .. } => assert_eq!(m, member, "{text}"),
        other => panic!("expected Unsafe for {member:?}, got {other:?}"),
    }
    assert!(text.contains(why), "{text:?} should mention {why:?}");
    assert!(text.contains("demo-1.0-py3-none-any.whl"), "{text}");
}

#[test]
fn unsafe_names_are_refused() {
    let cases: &[(&[u8], &str)] = &[
        (b"../evil", "'..'"),
        (b"pkg/../../evil", "'..'"),
        (b"pkg/..", "'..'"),
        (b"/etc/passwd", "absolute path"),
        (b"C:\\evil", "backslash"),
        (b"C:/evil", "drive letter"),
        (b"c:evil", "drive letter"),
        (b"\\\\server\\share\\evil", "backslash"),
        (b"pkg\\evil", "backslash"),
        (b"nul\0byte", "NUL"),
        (b"", "empty name"),
    ];
    for (name, why) in cases {
        let bytes = build_raw(
            &[Raw::file("ok.py", b"1"), Raw::file("x", b"2").named(name)],
            false,
        );
        assert_unsafe(expect_err(&bytes), &String::from_utf8_lossy(name), why);
    }
}

#[test]
fn duplicate_and_clashing_names_are_refused() {
    let cases: Vec<(Vec<Raw>, &str, &str)> = vec![
        (
            vec![Raw::file("a.py", b"1"), Raw::file("a.py", b"2")],
            "a.py",
            "appears twice",
        ),
        (
            vec![Raw::file("a", b"1"), Raw::dir("a/")],
            "a",
            "as a file and as a directory",
        ),
        (
            vec![Raw::file("./a", b"1"), Raw::stored("a", b"2")],
            "a",
            "appears twice",
        ),
        (
            vec![Raw::file("a", b"1"), Raw::file("a/b.py", b"2")],
            "a/b.py",
            "inside \"a\"",
        ),
        (
            vec![Raw::symlink("l", "d"), Raw::file("l/x", b"2")],
            "l/x",
            "as a symlink",
        ),
    ];
    for (entries, member, why) in cases {
        assert_unsafe(expect_err(&build_raw(&entries, false)), member, why);
    }
    // Explicit and implicit directories together are fine.
    let (_dir, archive) = open_ok(&build_raw(
        &[Raw::dir("a/"), Raw::file("a/b/c.py", b"1")],
        false,
    ));
    assert_eq!(archive.members().len(), 2);
}

#[test]
fn unsafe_symlinks_are_refused() {
    let cases: Vec<(Vec<Raw>, &str, &str)> = vec![
        (vec![Raw::symlink("l", "/etc/passwd")], "l", "absolute path"),
        (vec![Raw::symlink("l", "C:/x")], "l", "absolute path"),
        (
            vec![Raw::symlink("l", "../x")],
            "l",
            "escapes the wheel root",
        ),
        (
            vec![Raw::symlink("a/b/l", "../../../x")],
            "a/b/l",
            "escapes the wheel root",
        ),
        (
            vec![Raw::symlink("a/l", "b/../../..")],
            "a/l",
            "escapes the wheel root",
        ),
        (vec![Raw::symlink("l", "")], "l", "empty target"),
        (vec![Raw::symlink("l", "a\\b")], "l", "backslash"),
        (
            vec![Raw::symlink("x", "."), Raw::symlink("l", "x/..")],
            "l",
            "steps out of the symlink \"x\"",
        ),
        (
            vec![Raw::symlink("l", &"a/".repeat(2100))],
            "l",
            "target is 4200 bytes long",
        ),
    ];
    for (entries, member, why) in cases {
        assert_unsafe(expect_err(&build_raw(&entries, false)), member, why);
    }
}

#[test]
fn unsupported_methods_and_encryption_are_refused() {
    let mut bzip2 = Raw::stored("m.py", b"x");
    bzip2.method = 12;
    let err = expect_err(&build_raw(&[bzip2], false));
    assert!(matches!(err, WheelError::Unsupported { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"m.py\"") && text.contains("method 12 (bzip2)"),
        "{text}"
    );
    assert!(text.contains("only stored (0) and deflated (8)"), "{text}");
    let mut encrypted = Raw::file("secret.py", b"x");
    encrypted.flags |= FLAG_ENCRYPTED;
    let err = expect_err(&build_raw(&[encrypted], false));
    assert!(
        err.to_string().contains("\"secret.py\" is encrypted"),
        "{err}"
    );
    let mut fifo = Raw::stored("fifo", b"");
    fifo.external = 0o010_644 << 16;
    assert!(matches!(
        expect_err(&build_raw(&[fifo], false)),
        WheelError::Unsupported { .. }
    ));
}

#[test]
fn types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<WheelArchive>();
    assert_send_sync::<MemberCache>();
    assert_send_sync::<MemberData>();
    assert_send_sync::<WheelError>();
}

// ----- real wheels -----------------------------------------------------------------------

/// The shared real wheels (`crate::test_wheels`: `$VENVFS_TEST_WHEELS`, `../shared/wheels`
/// or `target/test-wheels`); `None` (and a message saying what to run) if absent.
fn real_wheels() -> Option<Vec<PathBuf>> {
    let dir = match crate::test_wheels::test_wheels_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return None;
        }
    };
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    wheels.sort();
    Some(wheels)
}

fn real_wheel(wheels: &[PathBuf], prefix: &str) -> Option<PathBuf> {
    let found = wheels
        .iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix));
    if found.is_none() {
        eprintln!("SKIPPED: no {prefix}*.whl among the real wheels");
    }
    found.cloned()
}

#[test]
fn real_wheels_all_open() {
    let Some(wheels) = real_wheels() else { return };
    assert!(
        !wheels.is_empty(),
        "no .whl files in the real-wheel directory"
    );
    let started = Instant::now();
    let mut total = 0;
    for path in &wheels {
        let archive = WheelArchive::open(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!archive.members().is_empty(), "{}", path.display());
        assert!(archive
            .members()
            .iter()
            .any(|m| m.name.ends_with(".dist-info/RECORD")));
        total += archive.members().len();
    }
    eprintln!(
        "opened {} real wheels ({total} members) in {:?}",
        wheels.len(),
        started.elapsed()
    );
}

#[test]
fn real_wheels_six_and_click_read_completely() {
    let Some(wheels) = real_wheels() else { return };
    let spill = tempfile::tempdir().unwrap();
    let cache = MemberCache::new(256 << 10, 64 << 10, spill.path().to_owned());
    for prefix in ["six-1.17.0-", "click-8.5.1-"] {
        let Some(path) = real_wheel(&wheels, prefix) else {
            continue;
        };
        let archive = Arc::new(WheelArchive::open(&path).unwrap());
        let mut files = 0;
        for (i, member) in archive.members().iter().enumerate() {
            if member.kind != MemberKind::File {
                continue;
            }
            assert!(member.is_compressed());
            let data = cache.open(&archive, i).unwrap_or_else(|e| panic!("{e}"));
            let mut read = 0u64;
            loop {
                let chunk = data.read_at(read, 128 << 10).unwrap();
                if chunk.is_empty() {
                    break;
                }
                read += chunk.len() as u64;
            }
            assert_eq!(read, member.size, "{}", member.name);
            files += 1;
        }
        assert!(files > 0);
        eprintln!("{prefix}: read {files} members; cache {:?}", cache.stats());
    }
    assert!(cache.stats().memory_bytes <= 256 << 10);
}

/// Opens numpy's wheel (1,166 entries) repeatedly and prints how long it takes; the figure
/// is a benchmark's to judge (scripts/bench's mount figure), not a test's, so a loaded
/// machine does not fail it.
#[test]
fn real_wheel_numpy_opens_and_says_how_fast() {
    let Some(wheels) = real_wheels() else { return };
    let Some(path) = real_wheel(&wheels, "numpy-2.4.6-") else {
        return;
    };
    let mut timings = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let archive = WheelArchive::open(&path).unwrap();
        timings.push(started.elapsed());
        let files = archive
            .members()
            .iter()
            .filter(|m| m.kind == MemberKind::File);
        assert_eq!(files.count(), 1042);
    }
    timings.sort();
    eprintln!(
        "numpy open (1,166 entries, 1,042 files): min {:?}, median {:?}",
        timings[0], timings[5]
    );
    // 215 opens ~ 250,000 entries, the 1,000-wheel target.
    let started = Instant::now();
    for _ in 0..215 {
        WheelArchive::open(&path).unwrap();
    }
    eprintln!("215 numpy opens (250,690 entries): {:?}", started.elapsed());
}
