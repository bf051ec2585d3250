//! Copy-up: the first change to a lower entry makes an upper copy of it, built in the work
//! directory and renamed into place, so the upper never holds a half-copied file. The lower
//! file itself is only ever opened for reading.

use std::io::Write;

use venvfs_api::{Error, FileKind, Ino, Result};

use super::tree::Tree;
use super::Overlay;
use crate::layer::Content;

impl Overlay {
    /// Makes sure directory `ino` and its ancestors exist in the upper layer.
    pub(super) fn copy_up_dir(&self, tree: &mut Tree, ino: Ino) -> Result<()> {
        let node = tree.get(ino)?;
        if node.upper {
            return Ok(());
        }
        let parent = node.parent;
        // (a `__pycache__` of no layer: as its parent's lower directory)
        let lid = match node.lower {
            None if node.bytecode => tree.get(parent)?.lower,
            lid => lid,
        };
        let lid = lid.ok_or(Error::NotFound)?;
        self.copy_up_dir(tree, parent)?;
        let path = tree.path(ino)?;
        let lower = std::sync::Arc::clone(&tree.lower);
        let l = lower.node(lid);
        let tmp = self.upper.temp();
        self.upper.mkdir(&tmp, 0o700)?;
        let result = (|| {
            self.upper.chmod(&tmp, l.perm.max(0o700) as u32)?;
            self.upper.set_mtime(&tmp, l.mtime)?;
            self.upper.rename(&tmp, &path, true)
        })();
        if let Err(e) = result {
            let _ = self.upper.rmdir(&tmp);
            // Another daemon on the venv directory (another host) copied it up first:
            // theirs is the same directory, already in place.
            let theirs = matches!(
                e.kind(),
                std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
            );
            if !theirs {
                return Err(e.into());
            }
        }
        tree.get_mut(ino)?.upper = true;
        Ok(())
    }

    /// Copies a lower file or symlink up; `with_data` false leaves the copy empty (for an
    /// open with O_TRUNC or a truncate to zero).
    pub(super) fn copy_up_file(&self, tree: &mut Tree, ino: Ino, with_data: bool) -> Result<()> {
        let node = tree.get(ino)?;
        if node.reference {
            return self.copy_up_reference(tree, ino, with_data);
        }
        if node.upper {
            return Ok(());
        }
        if node.kind == FileKind::Dir {
            return self.copy_up_dir(tree, ino);
        }
        if node.bytecode {
            // (a file this daemon is writing for the store stays there while written)
            let own = tree.backings.get(&ino).is_some_and(|b| b.stored.is_none());
            return match own && with_data {
                true => Ok(()),
                false => self.bytecode_to_upper(tree, ino),
            };
        }
        let parent = node.parent;
        let lid = node.lower.ok_or(Error::NotFound)?;
        self.copy_up_dir(tree, parent)?;
        let path = tree.path(ino)?;
        let lower = std::sync::Arc::clone(&tree.lower);
        let l = lower.node(lid);
        let tmp = self.upper.temp();
        let result = (|| -> Result<()> {
            match l.kind {
                FileKind::Symlink => {
                    let target = lower
                        .target(lid)
                        .ok_or(Error::Invalid("symlink without target"))?;
                    self.upper.symlink(target, &tmp)?;
                }
                _ => {
                    let mut out = self.upper.create_file(&tmp, 0o600)?;
                    if with_data {
                        copy_content(&self.open_lower(&lower, lid)?, &mut out, l.size)?;
                    }
                    self.upper
                        .set_file_meta(&out, l.perm, with_data.then_some(l.mtime))?;
                    out.sync_data()?;
                }
            }
            self.upper.rename(&tmp, &path, true)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.upper.remove_if_present(&tmp);
            // Another daemon on the venv directory (another host) copied it up first, or
            // wrote a file of that name: that one is the file from now on, as if this
            // daemon had copied it up itself (a change made to it here lands in it).
            let theirs =
                matches!(&e, Error::Os(io) if io.kind() == std::io::ErrorKind::AlreadyExists);
            if !theirs {
                return Err(e);
            }
        }
        tree.get_mut(ino)?.upper = true;
        self.open_files.copied_up(ino);
        let name = tree.get(ino)?.name.clone();
        self.module_changed(tree, parent, &name)
    }

    /// Replaces reference `ino` (an upper symlink into a read-only source) by a regular
    /// upper file with the content, mode and mtime of the file it points to (or empty:
    /// `with_data` false), built aside and renamed over the link.
    fn copy_up_reference(&self, tree: &mut Tree, ino: Ino, with_data: bool) -> Result<()> {
        let path = tree.path(ino)?;
        let attr = self.reference_attr(&path, ino)?;
        let tmp = self.upper.temp();
        let result = (|| -> Result<()> {
            let mut out = self.upper.create_file(&tmp, 0o600)?;
            if with_data {
                let source = Content::File(std::sync::Arc::new(self.upper.open_reference(&path)?));
                copy_content(&source, &mut out, attr.size)?;
            }
            self.upper
                .set_file_meta(&out, attr.perm, with_data.then_some(attr.mtime))?;
            out.sync_data()?;
            self.upper.rename(&tmp, &path, false)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.upper.remove_if_present(&tmp);
            return Err(e);
        }
        tree.get_mut(ino)?.reference = false;
        self.open_files.copied_up(ino);
        Ok(())
    }

    /// Copies up whatever kind of node `ino` is.
    pub(super) fn copy_up(&self, tree: &mut Tree, ino: Ino) -> Result<()> {
        self.bytecode_to_upper(tree, ino)?;
        self.copy_up_file(tree, ino, true)
    }
}

fn copy_content(content: &Content, out: &mut std::fs::File, size: u64) -> Result<()> {
    if let Content::File(f) = content {
        // std::io::copy between files uses copy_file_range / sendfile.
        std::io::copy(&mut &**f, out)?;
        return Ok(());
    }
    let mut off = 0u64;
    while off < size {
        let chunk = content.read_at(off, 1 << 20)?;
        if chunk.is_empty() {
            break;
        }
        out.write_all(&chunk)?;
        off += chunk.len() as u64;
    }
    Ok(())
}
