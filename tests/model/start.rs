//! The starting state of a test case: a few lower layers (plain directories) with
//! overlapping paths, and what the venv directory (the upper layer) already holds before the
//! filesystem opens: files and directories, whiteouts, opaque directories. It is part of the
//! generated input, so a failure shrinks to the smallest state that still shows it.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::ops::PATHS;

/// One entry a layer (or the upper) starts with.
#[derive(Clone, Debug)]
pub enum Seed {
    File { data: Vec<u8>, perm: u16 },
    Dir,
    Symlink(&'static str),
}

/// One entry the upper starts with: a real entry, or one of the overlay's markers.
#[derive(Clone, Debug)]
pub enum UpperSeed {
    Entry(Seed),
    /// `.wh.NAME`: hides NAME of the lower layers.
    Whiteout,
    /// A directory holding `.wh..wh..opq`: no lower content shows in it.
    Opaque,
}

#[derive(Clone, Debug)]
pub struct Start {
    /// Lower layers, top first: where two place a file at one path, the first wins; where
    /// both place a directory, their contents merge.
    pub layers: Vec<Vec<(&'static str, Seed)>>,
    pub upper: Vec<(&'static str, UpperSeed)>,
}

/// Permission bits of every directory a test case starts with.
pub const DIR_PERM: u16 = 0o755;
pub const PYVENV_CFG: &[u8] = b"version = 3.11.7\n";

/// The entries that a layer really gets, in the order they are made: shallow paths first,
/// the first of two entries at one path only, and nothing below a path that is not a
/// directory (a file at `lib/d` leaves no room for `lib/d/a`). Whiteouts take no room: a
/// real entry beside its own whiteout wins, as after a crash between the two.
pub fn settle<T: Clone>(
    entries: &[(&'static str, T)],
    blocks: impl Fn(&T) -> bool,
) -> Vec<(&'static str, T)> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|(p, _)| p.matches('/').count());
    let mut kept: Vec<(&'static str, T)> = Vec::new();
    for (path, entry) in sorted {
        let taken = kept.iter().any(|(k, e)| {
            *k == path || (blocks(e) && path.starts_with(k) && path[k.len()..].starts_with('/'))
        });
        if !taken {
            kept.push((path, entry));
        }
    }
    kept
}

pub fn seed_blocks(seed: &Seed) -> bool {
    !matches!(seed, Seed::Dir)
}

pub fn upper_blocks(seed: &UpperSeed) -> bool {
    matches!(seed, UpperSeed::Entry(s) if seed_blocks(s))
}

impl Start {
    /// Each layer's entries as [`settle`] leaves them, paths relative to `lib/`.
    pub fn settled_layers(&self) -> Vec<Vec<(&'static str, Seed)>> {
        self.layers
            .iter()
            .map(|l| {
                settle(l, seed_blocks)
                    .into_iter()
                    .map(|(p, s)| (p.strip_prefix("lib/").unwrap(), s))
                    .collect()
            })
            .collect()
    }

    /// The upper's entries as [`settle`] leaves them, paths relative to the venv root.
    pub fn settled_upper(&self) -> Vec<(&'static str, UpperSeed)> {
        settle(&self.upper, upper_blocks)
    }
}

/// The directories of a test case.
pub struct World {
    _tmp: tempfile::TempDir,
    pub venv: PathBuf,
    /// Lower layer directories, top first.
    pub layers: Vec<PathBuf>,
    /// A scratch directory holding the same tree as the model, changed with std::fs.
    pub real: PathBuf,
}

fn mkdirs(path: &Path) {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_PERM as u32)
        .create(path)
        .unwrap();
}

fn make(path: &Path, seed: &Seed) {
    mkdirs(path.parent().unwrap());
    match seed {
        Seed::File { data, perm } => {
            std::fs::write(path, data).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*perm as u32)).unwrap();
        }
        Seed::Dir => mkdirs(path),
        Seed::Symlink(target) => symlink(target, path).unwrap(),
    }
}

impl World {
    /// Writes the layers and the venv of `start` into a fresh temporary directory.
    pub fn build(start: &Start) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let mut layers = Vec::new();
        for (i, layer) in start.settled_layers().iter().enumerate() {
            let root = tmp.path().join(format!("layer{i}"));
            mkdirs(&root);
            for (path, seed) in layer {
                make(&root.join(path), seed);
            }
            layers.push(root);
        }
        let venv = tmp.path().join("venv");
        mkdirs(&venv.join("lib"));
        make(&venv.join("pyvenv.cfg"), &file(PYVENV_CFG));
        for (path, seed) in start.settled_upper() {
            let at = venv.join(path);
            match seed {
                UpperSeed::Entry(seed) => make(&at, &seed),
                UpperSeed::Whiteout => {
                    let name = format!(".wh.{}", at.file_name().unwrap().to_str().unwrap());
                    make(&at.with_file_name(name), &file(b""));
                }
                UpperSeed::Opaque => make(&at.join(".wh..wh..opq"), &file(b"")),
            }
        }
        let real = tmp.path().join("real");
        mkdirs(&real);
        World {
            _tmp: tmp,
            venv,
            layers,
            real,
        }
    }
}

fn file(data: &[u8]) -> Seed {
    Seed::File {
        data: data.to_vec(),
        perm: 0o644,
    }
}

/// Every entry below `root` with its mode and its content (files) or target (symlinks):
/// taken at the start and compared later, to prove the layers were never written.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let body = if meta.is_dir() {
                pending.push(path.clone());
                Vec::new()
            } else if meta.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else {
                std::fs::read(&path).unwrap()
            };
            out.insert(
                path.strip_prefix(root).unwrap().to_owned(),
                (meta.mode(), body),
            );
        }
    }
    out
}

fn seed(tag: &'static str) -> impl Strategy<Value = Seed> {
    prop_oneof![
        6 => (
            prop::collection::vec(prop::sample::select(&b"pqr"[..]), 0..4),
            prop::sample::select(&[0o644u16, 0o600, 0o755][..])
        )
            .prop_map(move |(mut data, perm)| {
                // the layer shows in the content, so precedence mistakes show in reads
                data.splice(0..0, tag.bytes());
                Seed::File { data, perm }
            }),
        2 => Just(Seed::Dir),
        // the only target that stays inside a layer wherever the link is
        1 => Just(Seed::Symlink("nowhere")),
    ]
}

fn path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&PATHS[..])
}

const LAYER_TAGS: [&str; 3] = ["L0-", "L1-", "L2-"];

pub fn start() -> impl Strategy<Value = Start> {
    let layers = (2..=3usize).prop_flat_map(|n| {
        (0..n)
            .map(|i| prop::collection::vec((path(), seed(LAYER_TAGS[i])), 0..8))
            .collect::<Vec<_>>()
    });
    let upper_seed = prop_oneof![
        4 => seed("U-").prop_map(UpperSeed::Entry),
        2 => Just(UpperSeed::Whiteout),
        1 => Just(UpperSeed::Opaque),
    ];
    let upper = prop::collection::vec((path(), upper_seed), 0..5);
    (layers, upper).prop_map(|(layers, upper)| Start { layers, upper })
}

/// [`PATHS`] in capitals below `lib/` (where the layers are mapped), in the same order.
const UPCASED: [&str; 14] = [
    "lib/A",
    "lib/B",
    "lib/C",
    "lib/D",
    "lib/E",
    "lib/D/A",
    "lib/D/B",
    "lib/D/C",
    "lib/D/E",
    "lib/E/A",
    "lib/E/B",
    "lib/E/D",
    "lib/D/E/A",
    "lib/E/D/A",
];

fn upcased(path: &'static str) -> &'static str {
    let i = PATHS
        .iter()
        .position(|p| *p == path)
        .expect("a path of the pool");
    UPCASED[i]
}

/// A starting state for a run under Windows rules: as [`start`], with some layers (and
/// perhaps the upper) spelled in capitals throughout, so that layers meet each other and
/// the upper in other spellings: a directory of two layers spelled differently merges,
/// a whiteout or an entry of the upper hides a lower entry spelled otherwise. (One
/// spelling within each layer: a layer holding `d` and `D` would be two entries on its
/// own filesystem and one on Windows.)
pub fn windows_start() -> impl Strategy<Value = Start> {
    (start(), [any::<bool>(); 3], any::<bool>()).prop_map(|(mut start, caps, upper_caps)| {
        for (layer, caps) in start.layers.iter_mut().zip(caps) {
            if caps {
                for (path, _) in layer.iter_mut() {
                    *path = upcased(path);
                }
            }
        }
        if upper_caps {
            for (path, _) in start.upper.iter_mut() {
                *path = upcased(path);
            }
        }
        start
    })
}
