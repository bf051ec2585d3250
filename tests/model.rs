//! A reference-model test of the overlay core: random sequences of filesystem operations run
//! through venvfs's `Overlay` (called directly, no kernel mount), through a small in-memory
//! model of POSIX semantics, and through a plain directory of the machine's own
//! filesystem, which keeps the model honest. Every op's answer must agree, and every few
//! ops (and after each remount, and at the end) so must the whole visible tree. The lower
//! layers must come out of it byte for byte as they went in.
//!
//! A failing case shrinks to a minimal sequence; its seed is kept in
//! `tests/model.proptest-regressions` and replayed first on every run. The minimal sequences
//! of the bugs found are also kept below as ordinary tests.
//!
//! Under Windows rules (as a Windows mount runs the core) the model follows them too: names
//! compared without regard to case but shown as spelled, share modes, delete on close and
//! delete pending. The real directory is left out then: it follows POSIX.
//!
//! What a Windows mount asks of the core, and where the runs under Windows rules cover it
//! (each Dokan callback's core calls are in `platform/dokan/src/volume.rs`; that the
//! callbacks make those calls, with those arguments, is tested in tests/dokan_volume.rs):
//!
//! | Dokan callback | core calls | ops here |
//! |---|---|---|
//! | `create_file` | lookup, open, create, mkdir, setattr (mode), reference | `Open`, `Create`, `Mkdir`, `Chmod` |
//! | `cleanup` | set_delete_pending, release | `Open { delete_on_close }`, `Close` |
//! | `close_file` | unreference | `Close` |
//! | `read_file` | read | `ReadOpen`, `Read` |
//! | `write_file` | getattr, write | `StatOpen`, `WriteOpen`, `Write` |
//! | `flush_file_buffers` | fsync (files; a directory's answers without the core) | `Fsync` |
//! | `get_file_information` | getattr | `StatOpen` |
//! | `find_files` (with pattern) | readdir, getattr | `List`, `StatOpen`, the tree walks |
//! | `set_file_attributes` | getattr, setattr (mode) | `StatOpen`, `Chmod` |
//! | `set_file_time` | setattr (atime, mtime, crtime) | `SetTimes` |
//! | `delete_file`, `delete_directory` | set_delete_pending | `SetDeletePending` |
//! | `move_file` | lookup, rename (noreplace or not) | `Rename` |
//! | `set_end_of_file`, `set_allocation_size` | getattr, setattr (size) | `StatOpen`, `Truncate` |
//! | `get_disk_free_space` | statfs | `Statfs` |
//! | `get_volume_information`, `get_file_security` | none (fixed answers) | - |
//!
//! Not compared: the creation time `set_file_time` gives (the core does not keep it: a
//! file shows its upper filesystem's birth time), and access times (reads move them). The
//! adapter's own logic around these calls (the disposition table, paging writes, pattern
//! matching, the NTSTATUS table) is plain code with its own tests.
//!
//! `cargo test --test model` runs a short pass; `scripts/model [CASES]` a long one
//! (`VENVFS_MODEL_CASES=2000 cargo test --test model -- --ignored long`).

/// The pieces, in tests/model/.
mod model {
    pub mod ops;
    pub mod oracle;
    pub mod reference;
    pub mod start;
    pub mod sut;
}

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use model::ops::{self, walk_masked_like, Access, Op, Walk};
use model::oracle::RealDir;
use model::reference::Model;
use model::start::{self, snapshot, Seed, Start, World};
use model::sut::Core;
use venvfs::overlay::OverlayConfig;
use venvfs::rules::Rules;

/// Whole trees are compared every this many ops.
const WALK_EVERY: usize = 8;

fn differences(expected: &Walk, got: &Walk) -> String {
    let mut out = String::new();
    let paths: std::collections::BTreeSet<&String> = expected.keys().chain(got.keys()).collect();
    for p in paths {
        let (e, g) = (expected.get(p), got.get(p));
        if e != g {
            out += &format!("  {p}:\n    expected {e:?}\n    got      {g:?}\n");
        }
    }
    out
}

fn same_trees(
    model: &Model,
    real: Option<&RealDir>,
    core: &Core,
    when: &str,
) -> Result<(), TestCaseError> {
    let expected = model.walk();
    if let Some(real) = real {
        let on_disk = walk_masked_like(real.walk(), &expected);
        prop_assert!(
            on_disk == expected,
            "{when}: a real directory disagrees with the model:\n{}",
            differences(&expected, &on_disk)
        );
    }
    let got = walk_masked_like(core.walk(), &expected);
    prop_assert!(
        got == expected,
        "{when}: the overlay's tree differs from the model's:\n{}",
        differences(&expected, &got)
    );
    Ok(())
}

/// Which of the core's configurations a run drives.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// As the Linux mount: the POSIX upper (directory descriptor, `*at` calls).
    Posix,
    /// The upper reached by path through `std::fs` only, as a Windows mount reaches it.
    PortableUpper,
    /// As a Windows mount: Windows rules over the portable upper (the one it uses).
    Windows,
}

impl Setup {
    fn config(self) -> OverlayConfig {
        OverlayConfig {
            portable_upper: matches!(self, Setup::PortableUpper | Setup::Windows),
            rules: match self {
                Setup::Windows => Rules::windows(),
                _ => Rules::posix(),
            },
            ..OverlayConfig::default()
        }
    }

    fn windows(self) -> bool {
        matches!(self, Setup::Windows)
    }
}

/// Runs `ops` from `start` through the model, a real directory and the overlay.
fn run(start: &Start, ops: &[Op]) -> Result<(), TestCaseError> {
    run_with(Setup::Posix, start, ops)
}

/// Runs `ops` from `start` through the model, a real directory and the overlay set up as
/// `setup` says.
fn run_with(setup: Setup, start: &Start, ops: &[Op]) -> Result<(), TestCaseError> {
    // as the daemon: modes come from the kernel with the caller's umask applied
    rustix::process::umask(rustix::fs::Mode::empty());
    let world = World::build(start);
    let layers_before: Vec<_> = world.layers.iter().map(|l| snapshot(l)).collect();
    let layers_unchanged = |when: &str| -> Result<(), TestCaseError> {
        for (layer, before) in world.layers.iter().zip(&layers_before) {
            prop_assert!(
                snapshot(layer) == *before,
                "{when}: lower layer {} was changed",
                layer.display()
            );
        }
        Ok(())
    };
    let mut model = match setup.windows() {
        true => Model::windows(start),
        false => Model::new(start),
    };
    // (POSIX only: see oracle.rs)
    let mut real = (!setup.windows()).then(|| RealDir::new(&world.real, &model.walk()));
    let mut core = Core::new(&world.venv, &world.layers, setup.config());
    same_trees(&model, real.as_ref(), &core, "at the start")?;
    for (i, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        if let Some(real) = real.as_mut() {
            let on_disk = real.apply(op).masked_like(&expected);
            prop_assert!(
                on_disk == expected,
                "op {i} {op:?}: a real directory answered {on_disk:?}, the model {expected:?}"
            );
        }
        let got = core.apply(op).masked_like(&expected);
        prop_assert!(
            got == expected,
            "op {i} {op:?}: the overlay answered {got:?}, the model {expected:?}"
        );
        let when = format!("after op {i} {op:?}");
        if matches!(op, Op::Remount) {
            layers_unchanged(&when)?;
        }
        if matches!(op, Op::Remount) || (i + 1) % WALK_EVERY == 0 {
            same_trees(&model, real.as_ref(), &core, &when)?;
        }
    }
    same_trees(&model, real.as_ref(), &core, "at the end")?;
    layers_unchanged("at the end")
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Cases of the long run: `VENVFS_MODEL_CASES`, 2000 by default.
fn long_cases() -> u32 {
    std::env::var("VENVFS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(config(64))]

    /// A short pass, for every `cargo test`.
    #[test]
    fn short(start in start::start(), ops in ops::ops(40)) {
        run(&start, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// A short pass over the portable upper (the one a Windows mount uses).
    #[test]
    fn short_portable_upper(start in start::start(), ops in ops::ops(40)) {
        run_with(Setup::PortableUpper, &start, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// A short pass under Windows rules (over the portable upper, as a Windows mount).
    #[test]
    fn short_windows(start in start::windows_start(), ops in ops::windows_ops(40)) {
        run_with(Setup::Windows, &start, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(long_cases()))]

    /// Many more and longer sequences, for a script to run.
    #[test]
    #[ignore = "long: run with --ignored, VENVFS_MODEL_CASES sets the number of cases"]
    fn long(start in start::start(), ops in ops::ops(120)) {
        run(&start, &ops)?;
    }

    /// The same over the portable upper.
    #[test]
    #[ignore = "long: run with --ignored, VENVFS_MODEL_CASES sets the number of cases"]
    fn long_portable_upper(start in start::start(), ops in ops::ops(120)) {
        run_with(Setup::PortableUpper, &start, &ops)?;
    }

    /// The same under Windows rules.
    #[test]
    #[ignore = "long: run with --ignored, VENVFS_MODEL_CASES sets the number of cases"]
    fn long_windows(start in start::windows_start(), ops in ops::windows_ops(120)) {
        run_with(Setup::Windows, &start, &ops)?;
    }
}

/// Replays a minimal failing sequence found by the runs above.
fn replay(start: Start, ops: &[Op]) {
    if let Err(e) = run(&start, ops) {
        panic!("{e}");
    }
}

fn lower_file(path: &'static str) -> (&'static str, Seed) {
    let data = b"L0-".to_vec();
    (path, Seed::File { data, perm: 0o644 })
}

/// `renameat2(RENAME_NOREPLACE)` of an entry onto its own name fails with EEXIST on Linux;
/// the overlay once answered success. (Linux's VFS answers this itself before a request reaches
/// a FUSE filesystem, so through the kernel mount it is not seen; an adapter without that
/// check in front would pass it through.)
#[test]
fn rename_noreplace_onto_itself() {
    replay(
        Start {
            layers: vec![vec![lower_file("lib/d/a")], vec![]],
            upper: vec![],
        },
        &[Op::Rename {
            from: "lib/d",
            to: "lib/d",
            noreplace: true,
        }],
    );
}

/// Renaming an entry over a directory that holds it fails with ENOTEMPTY on Linux (the
/// directory is not empty: it holds the source); the overlay once compared the kinds first
/// and answered EISDIR for a file. (Linux's VFS catches this before FUSE.)
#[test]
fn rename_onto_an_ancestor() {
    replay(
        Start {
            layers: vec![vec![lower_file("lib/d/a")], vec![]],
            upper: vec![],
        },
        &[Op::Rename {
            from: "lib/d/a",
            to: "lib/d",
            noreplace: false,
        }],
    );
}

/// Renaming a directory to a path inside itself fails with EINVAL on Linux, whatever is
/// there; when something was, the overlay once compared it with the source first and
/// answered ENOTDIR (a file there) or ENOTEMPTY. (Linux's VFS catches this before FUSE.)
#[test]
fn rename_into_itself_over_an_entry() {
    replay(
        Start {
            layers: vec![vec![lower_file("lib/d/c")], vec![]],
            upper: vec![],
        },
        &[Op::Rename {
            from: "lib/d",
            to: "lib/d/c",
            noreplace: false,
        }],
    );
}

/// Two hard links of one file are two inodes to the overlay after a remount (it keeps no
/// record of links across mounts). Renaming one name over the other is then a rename
/// between two inodes as far as the kernel knows, so it reaches the overlay; the upper
/// filesystem's rename(2) of two links of one file does nothing, as POSIX says, but the
/// overlay used to drop the source name from its tree anyway (`lib/a` was gone until the
/// next remount showed it again); it now checks that the two are one file on disk.
#[test]
fn rename_between_hard_links_after_remount() {
    replay(
        Start {
            layers: vec![vec![lower_file("lib/a")], vec![]],
            upper: vec![],
        },
        &[
            Op::Link {
                from: "lib/a",
                to: "lib/b",
            },
            Op::Remount,
            Op::Rename {
                from: "lib/a",
                to: "lib/b",
                noreplace: false,
            },
            Op::Stat { path: "lib/a" },
        ],
    );
}

/// Replays a minimal failing sequence found by the runs under Windows rules.
fn replay_windows(start: Start, ops: &[Op]) {
    if let Err(e) = run_with(Setup::Windows, &start, ops) {
        panic!("{e}");
    }
}

/// An open directory removed meanwhile (rmdir is immediate in the core; open handles stay
/// valid) is still a file to its handle: marking it for deletion works, as it does for a
/// removed file or a removed directory of a lower layer. For a directory of the upper layer
/// the overlay once lost its attributes with its path and answered "not found".
#[test]
fn windows_mark_a_removed_upper_directory() {
    replay_windows(
        Start {
            layers: vec![vec![], vec![]],
            upper: vec![],
        },
        &[
            Op::Mkdir {
                path: "lib/d",
                mode: 0o755,
            },
            Op::Open {
                slot: 1,
                path: "lib/D",
                access: Access::Read,
                truncate: false,
                share: None,
                delete: false,
                delete_on_close: false,
            },
            Op::Rmdir { path: "lib/d" },
            Op::SetDeletePending {
                slot: 1,
                delete: true,
            },
            Op::Close { slot: 1 },
        ],
    );
}

/// Renaming one hard link of a file over another of the same name in another directory
/// does nothing (POSIX: two names of one file). The overlay took it for a case-only rename
/// (the same entry found under another spelling, added with the Windows name rules) and
/// moved the name, so `lib/e/b` was gone, under POSIX rules too.
#[test]
fn rename_between_hard_links_of_one_name() {
    replay(
        Start {
            layers: vec![vec![], vec![]],
            upper: vec![("lib/e", start::UpperSeed::Entry(Seed::Dir))],
        },
        &[
            Op::Mkdir {
                path: "lib/d",
                mode: 0o755,
            },
            Op::Create {
                path: "lib/d/b",
                mode: 0o644,
            },
            Op::Link {
                from: "lib/d/b",
                to: "lib/e/b",
            },
            Op::Rename {
                from: "lib/e/b",
                to: "lib/d/b",
                noreplace: false,
            },
            Op::Stat { path: "lib/e/b" },
        ],
    );
}

/// Times set explicitly (Dokan's `set_file_time`, utimensat) are compared where the model
/// knows them: on a lower file (copied up by the change), on a directory, across a chmod
/// (which keeps them), an open for writing, and a remount; fsync and statfs change nothing. Checks too that the
/// model does know them here, so that the comparison is not masked away.
#[test]
fn times_are_kept_and_compared() {
    let start = || Start {
        layers: vec![vec![lower_file("lib/d/a")], vec![]],
        upper: vec![],
    };
    let ops = [
        Op::SetTimes {
            path: "lib/d/a",
            time: 1,
            crtime: true,
        },
        Op::Chmod {
            path: "lib/d/a",
            mode: 0o600,
        },
        Op::Open {
            slot: 0,
            path: "lib/d/a",
            access: Access::ReadWrite,
            truncate: false,
            share: None,
            delete: false,
            delete_on_close: false,
        },
        // (after the ops on lib/d/a: they may copy it up into lib/d, so the model forgets
        // lib/d's time at each)
        Op::SetTimes {
            path: "lib/d",
            time: 2,
            crtime: false,
        },
        Op::Fsync { slot: 0 },
        Op::StatOpen { slot: 0 },
        Op::Statfs,
        Op::Remount,
        Op::Stat { path: "lib/d/a" },
        Op::Stat { path: "lib/d" },
    ];
    for setup in [Setup::Posix, Setup::PortableUpper, Setup::Windows] {
        if let Err(e) = run_with(setup, &start(), &ops) {
            panic!("{setup:?}: {e}");
        }
    }
    let mut model = Model::new(&start());
    for op in &ops[..ops.len() - 2] {
        model.apply(op);
    }
    for (path, time) in [("lib/d/a", 1), ("lib/d", 2)] {
        match model.apply(&Op::Stat { path }) {
            ops::Outcome::Stat(m) => assert_eq!(m.mtime, Some(ops::time(time)), "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}
