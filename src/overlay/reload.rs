//! Live changes of the layers: a mounted venv takes a new manifest (`venvfs sync`,
//! `install`, `uninstall`, `layer add|remove` while mounted) without unmounting.
//!
//! The command changes the venv's own directory beneath the mount (generated files,
//! whiteouts) and the manifest, then asks the daemon to reload. Reloading builds the new
//! lower tree, and then, for every directory the kernel has seen (the loaded ones), computes
//! its merged view afresh and compares it with the one in memory, name by name:
//! - a name that is new, or gone, or now another file (another layer's, or an upper file the
//!   command rewrote) changes; the kernel is told to forget that name (and the directory's
//!   cached listing and attributes), so its day-long caches stay right;
//! - a directory stays the same node whatever its layers now are, and is compared in turn;
//! - a file that is still the same file of the same layer source stays the same node.
//!
//! A node that leaves the view is detached: if the kernel still holds it (a process has the
//! file open, or mapped, as a running Python does with the `.so` files it imported), the
//! open-file registry keeps its content and attributes until the last holder lets go, so a
//! removed layer's open files keep reading as they did. Nothing else in the tree moves: the
//! kernel's inode numbers for unchanged entries stay valid.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::sync::Arc;

use venvfs_api::{Attr, FileKind, Ino, KernelCache, Result, ROOT};

use super::open_files::Desc;
use super::tree::{Tree, Want};
use super::Overlay;
use crate::lower::LowerTree;
use crate::manifest::Manifest;

/// What a reload changed, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reloaded {
    /// Names that appeared, vanished or now show another file.
    pub names: usize,
    /// Directories compared.
    pub dirs: usize,
}

impl Overlay {
    /// Takes `manifest` as the venv's layers while mounted. `touched` are the venv-relative
    /// paths whose upper files the change wrote or removed; `cache` is told what the kernel
    /// must forget.
    pub fn reload(
        &self,
        manifest: &Manifest,
        touched: &[Vec<u8>],
        cache: &dyn KernelCache,
    ) -> Result<Reloaded, super::OpenError> {
        self.reload_after(manifest, cache, &[], || touched.to_vec())
    }

    /// [`Overlay::reload`] of a change that `change` makes to the venv's own files while
    /// the tree is locked, returning the paths it touched: no request finds the files
    /// changed before the tree knows (requests wait meanwhile). For changes where each
    /// file's old and new state show the same bytes, such as removing a copy of a layer's
    /// file (`venvfs adopt`), whose removal would otherwise show as a missing file until
    /// the reload. `removing` are the upper files the change may remove: those the kernel
    /// holds (a program may have one open, or mapped, as Python does a `.so`) are opened
    /// first, and keep serving their old node until the kernel lets go, as an unlinked
    /// file does.
    pub fn reload_after(
        &self,
        manifest: &Manifest,
        cache: &dyn KernelCache,
        removing: &[Vec<u8>],
        change: impl FnOnce() -> Vec<Vec<u8>>,
    ) -> Result<Reloaded, super::OpenError> {
        let new_lower = Arc::new(LowerTree::build(
            manifest,
            &self.manifest_behind_mount(),
            self.cfg.rules.names(),
        )?);
        let mut forget_names: Vec<(Ino, OsString)> = Vec::new();
        let mut forget_inodes: Vec<Ino> = Vec::new();
        let mut done = Reloaded::default();
        {
            let mut tree = self.tree.write();
            // (a reference, a link into uv's cache, keeps the cache file it showed)
            let held: Vec<(Ino, Desc)> = removing
                .iter()
                .filter_map(|path| {
                    let ino = loaded_node(&tree, path)?;
                    let node = tree.get(ino).ok()?;
                    let upper_file = node.upper && node.kind == FileKind::File;
                    if !upper_file || !self.held(&tree, ino).unwrap_or(false) {
                        return None;
                    }
                    let desc = match node.reference {
                        true => self.reference_desc(path, ino).ok()?,
                        false => Desc::Upper(super::open_files::UpperFile {
                            file: Arc::new(self.upper.open_ro(path).ok()?),
                            writable: false,
                        }),
                    };
                    Some((ino, desc))
                })
                .collect();
            let touched = change();
            self.upper.forget_attrs(); // (the change was made beneath the upper)
            let touched: HashSet<&[u8]> = touched.iter().map(|p| p.as_slice()).collect();
            let old_lower = std::mem::replace(&mut tree.lower, new_lower);
            let mut dirs = vec![ROOT];
            while let Some(dir) = dirs.pop() {
                if tree.get(dir)?.dir.is_none() {
                    continue; // never looked into: the kernel has nothing of it cached
                }
                done.dirs += 1;
                let changed = self.reconcile(
                    &mut tree,
                    &old_lower,
                    dir,
                    &touched,
                    &mut dirs,
                    &mut forget_names,
                )?;
                if changed {
                    forget_inodes.push(dir);
                }
            }
            // Nodes already out of the view (unlinked or renamed over while the kernel held
            // them) still name lower nodes of the old tree: they are detached too, so their
            // content and attributes come from the registry, not from the new tree.
            let gone: Vec<Ino> = tree
                .inos()
                .filter(|&i| {
                    tree.get(i)
                        .is_ok_and(|n| n.unlinked && !n.upper && n.lower.is_some())
                })
                .collect();
            for ino in gone {
                self.detach(&mut tree, &old_lower, ino)?;
            }
            for (ino, desc) in held {
                if self.held(&tree, ino)? {
                    self.open_files.put(ino, desc);
                }
            }
        }
        done.names = forget_names.len();
        // (with the tree unlocked: the kernel may need a request answered to act on these)
        for (parent, name) in &forget_names {
            cache.invalidate_entry(*parent, name);
        }
        for ino in forget_inodes {
            cache.invalidate_inode(ino);
        }
        Ok(done)
    }

    /// Brings loaded directory `dir` in line with the upper and the new lower tree. Pushes
    /// the loaded subdirectories still in the view onto `dirs`; returns whether any name
    /// changed.
    pub(super) fn reconcile(
        &self,
        tree: &mut Tree,
        old_lower: &LowerTree,
        dir: Ino,
        touched: &HashSet<&[u8]>,
        dirs: &mut Vec<Ino>,
        forget: &mut Vec<(Ino, OsString)>,
    ) -> Result<bool> {
        let wanted = tree.wanted(dir, &*self.upper)?;
        // (by key: the children's keys, under the mount's name rules)
        let mut old: Vec<(Box<OsStr>, Ino)> = tree
            .entries(dir)
            .map(|e| {
                e.into_iter()
                    .map(|(n, i)| (tree.key(n).into(), i))
                    .collect()
            })
            .unwrap_or_default();
        old.sort_unstable();
        let mut kept = vec![false; old.len()];
        let mut changed = false;
        for want in wanted {
            let name = &want.name;
            let key = tree.key(name).into_owned();
            let at = old.binary_search_by(|(n, _)| (**n).cmp(&key)).ok();
            if let Some(i) = at {
                let ino = old[i].1;
                if self.same(tree, old_lower, ino, &want, touched)? {
                    kept[i] = true;
                    let node = tree.get_mut(ino)?;
                    node.lower = want.lower;
                    node.upper = want.upper;
                    if want.kind == FileKind::Dir {
                        dirs.push(ino);
                    }
                    continue;
                }
                kept[i] = true;
                self.detach(tree, old_lower, ino)?;
                tree.remove_name(ino, dir, name)?;
            }
            let name = name.clone();
            let child = tree.push_want(dir, want);
            tree.insert_child(dir, &name, child)?;
            forget.push((dir, name));
            changed = true;
        }
        for ((name, ino), kept) in old.into_iter().zip(kept) {
            if !kept {
                self.detach(tree, old_lower, ino)?;
                tree.remove_name(ino, dir, &name)?;
                forget.push((dir, name.into_os_string()));
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Whether node `ino` still is what `want` describes.
    fn same(
        &self,
        tree: &Tree,
        old_lower: &LowerTree,
        ino: Ino,
        want: &Want,
        touched: &HashSet<&[u8]>,
    ) -> Result<bool> {
        let node = tree.get(ino)?;
        if node.kind != want.kind || node.bytecode != want.bytecode {
            return Ok(false);
        }
        if want.bytecode && !want.upper && want.kind == FileKind::File {
            let now = tree.backings.get(&ino).map(|b| &b.path);
            return Ok(now == want.stored.as_ref().map(|b| &b.path));
        }
        if want.link_dir.is_some() {
            return Ok(tree.pycache_links.get(&ino) == want.link_dir.as_ref());
        }
        if want.kind == FileKind::Dir {
            return Ok(true);
        }
        if node.upper != want.upper || node.reference != want.reference {
            return Ok(false);
        }
        if want.upper {
            return Ok(!touched.contains(tree.path(ino)?.as_slice()));
        }
        Ok(match (node.lower, want.lower) {
            (Some(a), Some(b)) => old_lower.identity(a) == tree.lower.identity(b),
            _ => false,
        })
    }

    /// Takes node `ino` (and what is loaded below it) out of the view: whatever the kernel
    /// still holds keeps serving from the registry.
    fn detach(&self, tree: &mut Tree, old_lower: &LowerTree, ino: Ino) -> Result<()> {
        let mut pending = vec![ino];
        while let Some(ino) = pending.pop() {
            let node = tree.get(ino)?;
            pending.extend(node.child_inos());
            let attr = self.detached_attr(tree, old_lower, ino);
            let lower = node
                .lower
                .filter(|_| !node.upper && node.kind == FileKind::File);
            let referenced = node.referenced();
            // (an upper file the change replaced is gone from disk: only a descriptor of it
            // that is open already keeps it readable, and the registry keeps that one)
            // A layer file that cannot be opened any more (its source is gone: `uv cache
            // clean` while mounted, see daemon/sources.rs) leaves its holders nothing to
            // read; that must not fail the reload, which has replaced the lower tree by now.
            let open = || match lower {
                Some(lid) => match self.open_lower(old_lower, lid) {
                    Ok(file) => Some(Desc::Lower(Arc::new(file))),
                    Err(e) => {
                        tracing::info!("a file taken out of the view cannot be kept open: {e}");
                        None
                    }
                },
                None => None,
            };
            self.open_files
                .detach(ino, referenced, attr, || Ok(open()))?;
            let node = tree.get_mut(ino)?;
            if !node.upper {
                node.lower = None;
            }
            if let Some(d) = node.dir.as_mut() {
                d.children.clear();
                *d.listing.get_mut() = None;
            }
        }
        Ok(())
    }

    /// The attributes a detached node keeps showing, from the tree it was part of.
    fn detached_attr(&self, tree: &Tree, old_lower: &LowerTree, ino: Ino) -> Option<Attr> {
        let node = tree.get(ino).ok()?;
        if node.upper {
            return None; // (its own open file answers)
        }
        Some(self.lower_attr(old_lower, node.lower?, ino))
    }
}

impl Overlay {
    /// Where the manifest is reached without going through the mount: the generated layer
    /// a change wrote is next to it, in the `.venvfs` that the mount (covering the venv
    /// directory itself on Linux) hides.
    fn manifest_behind_mount(&self) -> std::path::PathBuf {
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.upper.dir_fd() {
            use std::os::fd::AsRawFd;
            return std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .join(crate::manifest::STATE_DIR)
                .join(crate::manifest::MANIFEST_FILE);
        }
        self.manifest_path.clone()
    }
}

/// The node at venv-relative `path`, if every directory on the way is loaded (else the
/// kernel has never seen it).
fn loaded_node(tree: &Tree, path: &[u8]) -> Option<Ino> {
    let mut ino = ROOT;
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        ino = tree
            .child(ino, crate::fsutil::os_str_from_bytes(part)?)
            .ok()??;
    }
    Some(ino)
}
