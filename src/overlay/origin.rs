//! Where a file of the merged view keeps its bytes on disk, for `venvfs materialize`, which
//! copies, clones or hard-links each file from there instead of reading it through the
//! overlay when it can.

use std::path::PathBuf;

use venvfs_api::{Error, FileKind, Ino, Result};

use super::Overlay;
use crate::layer::Source;
use crate::upper::Rel;

/// Where the content of a regular file of the merged view is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The venv's own file, at this venv-relative path.
    Upper(Rel),
    /// A read-only file outside the venv with exactly the content shown: a file of an
    /// unpacked-wheel layer, the cache file a reference (a symlink of uv's symlink link
    /// mode) points to, or a `.pyc` of a bytecode store.
    ReadOnly(PathBuf),
    /// A member of a `.whl` layer: there is no file of it to link or clone; only the
    /// overlay's `read` gives its bytes.
    Member,
}

impl Overlay {
    /// Where the regular file `ino` (looked up before) keeps its content.
    pub fn origin(&self, ino: Ino) -> Result<Origin> {
        let tree = self.tree.read();
        let node = tree.get(ino)?;
        if node.kind != FileKind::File {
            return Err(Error::Invalid("not a regular file"));
        }
        let path = tree.path(ino)?;
        if node.reference {
            return self
                .upper
                .reference_target(&path)
                .map(Origin::ReadOnly)
                .ok_or(Error::NotFound);
        }
        if node.upper {
            return Ok(Origin::Upper(path));
        }
        if node.bytecode {
            // a `.pyc` of a bytecode store (which never changes a file it holds)
            let backing = tree.backings.get(&ino).ok_or(Error::NotFound)?;
            return Ok(Origin::ReadOnly(backing.path.clone()));
        }
        let lid = node.lower.ok_or(Error::NotFound)?;
        let l = tree.lower.node(lid);
        Ok(match &tree.lower.layers[l.layer as usize] {
            Source::Dir { root } => Origin::ReadOnly(root.join(&*l.src)),
            Source::Wheel(_) => Origin::Member,
        })
    }
}
