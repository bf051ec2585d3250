//! [`FuseAdapter`]: `fuser::Filesystem` on top of a [`venvfs_api::FileSystem`].
//!
//! Every handler calls one core method and translates the result; failures go through
//! [`respond`], which logs them and replies with the errno from [`crate::errno`].

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::Arc;

use fuser::{
    AccessFlags, BackingId, Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use venvfs_api::{Entry, Error, FileSystem, Lookup, Opened, Result, SetAttr, XattrReply, XattrSet};

use crate::convert::{
    allocate, caller, file_attr, file_type, handle, is_dot, listing_entry, negative_attr,
    open_request, set_time, special_file,
};
use crate::errno::{errno, log_failure};
use crate::passthrough::{Mode, Passthrough};
use crate::stats::{Op, RequestStats};

/// Largest write the kernel may send in one request.
const MAX_WRITE: u32 = 1 << 20;
/// Readahead asked for (the kernel caps it at what it offered).
const MAX_READAHEAD: u32 = 1 << 20;
/// Capabilities taken when the kernel offers them. Writeback cache stays off: the core
/// must see every write as it happens.
const WANTED: InitFlags = InitFlags::FUSE_DO_READDIRPLUS
    .union(InitFlags::FUSE_READDIRPLUS_AUTO)
    .union(InitFlags::FUSE_PARALLEL_DIROPS)
    .union(InitFlags::FUSE_CACHE_SYMLINKS);
/// No generation numbers: the core does not reuse inode numbers within a mount.
const GENERATION: Generation = Generation(0);

/// Serves a [`FileSystem`] to the kernel through `fuser`.
#[derive(Debug)]
pub struct FuseAdapter<F: FileSystem> {
    fs: F,
    want_passthrough: bool,
    passthrough: Passthrough<BackingId>,
    /// Answer opens of files with ENOSYS, after which the kernel stops sending them (and
    /// their releases): the core serves I/O by inode, so opens only cost round trips,
    /// unless passthrough (which needs them) is on.
    skip_opens: bool,
    stats: Arc<RequestStats>,
}

impl<F: FileSystem> FuseAdapter<F> {
    /// Wrap `fs`. With `passthrough`, reads of files the core backs with a local file go
    /// straight to that file when the kernel supports it (needs CAP_SYS_ADMIN).
    pub fn new(fs: F, passthrough: bool) -> Self {
        FuseAdapter {
            fs,
            want_passthrough: passthrough,
            passthrough: Passthrough::new(),
            stats: Arc::default(),
            skip_opens: false,
        }
    }

    /// One kernel lookup of the entry's inode (every reply that hands the kernel an entry
    /// adds one to its nlookup): a reference, for the core.
    fn looked_up(&self, e: &Entry) {
        self.fs.reference(e.attr.ino);
    }

    /// The kernel dropped `nlookup` lookups of `ino`.
    fn forgotten(&self, ino: u64, nlookup: u64) {
        self.fs.unreference(ino, nlookup);
    }

    /// Replies with an entry, which the kernel then holds.
    fn entry_reply(&self, reply: ReplyEntry, e: Entry) {
        self.looked_up(&e);
        reply.entry(&e.ttl, &file_attr(&e.attr), GENERATION);
    }

    /// The counts of requests served so far, by kind.
    pub fn stats(&self) -> Arc<RequestStats> {
        Arc::clone(&self.stats)
    }

    /// The wrapped filesystem.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    /// Answer an open, through passthrough when possible.
    fn opened(&self, ino: u64, o: Opened, reply: ReplyOpen) {
        let fh = FileHandle(o.fh);
        match self.passthrough.choose(ino, &o, |f| reply.open_backing(f)) {
            Mode::Cached { keep_cache } => reply.opened(fh, open_flags(keep_cache)),
            Mode::Passthrough(id) => reply.opened_passthrough(fh, FopenFlags::empty(), &id),
        }
    }

    /// Answer a create, through passthrough when possible.
    fn created(&self, (e, mut o): (Entry, Opened), reply: ReplyCreate) {
        self.looked_up(&e);
        if self.skip_opens {
            // The kernel sends no RELEASE once opens are skipped, not even for the files it
            // creates: the handle is closed now and the file served by inode.
            self.fs.release(e.attr.ino, o.fh);
            o.fh = 0;
        }
        let (attr, fh) = (file_attr(&e.attr), FileHandle(o.fh));
        match self
            .passthrough
            .choose(e.attr.ino, &o, |f| reply.open_backing(f))
        {
            Mode::Cached { keep_cache } => {
                reply.created(&e.ttl, &attr, GENERATION, fh, open_flags(keep_cache))
            }
            Mode::Passthrough(id) => {
                let flags = FopenFlags::empty();
                reply.created_passthrough(&e.ttl, &attr, GENERATION, fh, flags, &id)
            }
        }
    }

    /// The entry for a listed name in readdirplus. `Ok(None)` when the name vanished since
    /// the listing.
    fn plus_entry(&self, dir: u64, name: &OsStr) -> Result<Option<Entry>> {
        match self.fs.lookup(dir, name) {
            Ok(Lookup::Found(entry)) => Ok(Some(entry)),
            Ok(Lookup::Missing { .. }) => Ok(None),
            Err(e) if errno(&e) == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The reply types share no trait for errors in `fuser`; this is it.
trait ErrorReply {
    fn fail(self, errno: Errno);
}

macro_rules! error_reply {
    ($($t:ty),*) => {$(
        impl ErrorReply for $t {
            fn fail(self, errno: Errno) {
                self.error(errno)
            }
        }
    )*};
}
error_reply!(
    ReplyAttr,
    ReplyCreate,
    ReplyData,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyEmpty,
    ReplyEntry,
    ReplyOpen,
    ReplyStatfs,
    ReplyWrite,
    ReplyXattr
);

/// Reply with `ok(reply, value)` on success; on failure log and reply with the errno.
fn respond<T, R: ErrorReply>(
    op: &'static str,
    ino: u64,
    res: Result<T>,
    reply: R,
    ok: impl FnOnce(R, T),
) {
    match res {
        Ok(value) => ok(reply, value),
        Err(err) => fail(op, ino, &err, reply),
    }
}

fn fail<R: ErrorReply>(op: &'static str, ino: u64, err: &Error, reply: R) {
    let n = errno(err);
    log_failure(op, ino, err, n);
    reply.fail(Errno::from_i32(n));
}

fn empty_reply(reply: ReplyEmpty, (): ()) {
    reply.ok();
}

fn xattr_reply(size: u32) -> impl FnOnce(ReplyXattr, XattrReply) {
    move |reply, x| match x {
        XattrReply::Size(n) => reply.size(n),
        // The kernel cannot take more than it asked for.
        XattrReply::Data(d) if size != 0 && d.len() > size as usize => reply.error(Errno::ERANGE),
        XattrReply::Data(d) => reply.data(&d),
    }
}

fn open_flags(keep_cache: bool) -> FopenFlags {
    if keep_cache {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
}

fn rename_flags(flags: RenameFlags) -> Result<venvfs_api::RenameFlags> {
    let known = RenameFlags::RENAME_NOREPLACE | RenameFlags::RENAME_EXCHANGE;
    if !known.contains(flags) {
        return Err(Error::Invalid("rename flags"));
    }
    Ok(venvfs_api::RenameFlags {
        noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE),
        exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
    })
}

fn xattr_set(flags: i32) -> Result<XattrSet> {
    match flags & (libc::XATTR_CREATE | libc::XATTR_REPLACE) {
        0 => Ok(XattrSet::Any),
        libc::XATTR_CREATE => Ok(XattrSet::Create),
        libc::XATTR_REPLACE => Ok(XattrSet::Replace),
        _ => Err(Error::Invalid("setxattr flags")),
    }
}

impl<F: FileSystem> fuser::Filesystem for FuseAdapter<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let offered = config.capabilities();
        if let Err(missing) = config.add_capabilities(WANTED & offered) {
            tracing::debug!("kernel refused capabilities {missing:?}");
        }
        if !offered.contains(WANTED) {
            tracing::debug!("kernel lacks capabilities {:?}", WANTED - offered);
        }
        if self.want_passthrough {
            if offered.contains(InitFlags::FUSE_PASSTHROUGH)
                && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok()
            {
                self.passthrough.grant();
            } else {
                tracing::debug!("the kernel does not offer FUSE passthrough");
            }
        }
        self.skip_opens = !self.passthrough.is_granted();
        if let Err(max) = config.set_max_write(MAX_WRITE) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(MAX_READAHEAD) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.stats.count(Op::Lookup);
        let res = self.fs.lookup(parent.0, name);
        respond("lookup", parent.0, res, reply, |r, l| match l {
            Lookup::Found(e) => self.entry_reply(r, e),
            Lookup::Missing { ttl } => r.entry(&ttl, &negative_attr(), GENERATION),
        });
    }

    // batch_forget: fuser's default calls forget for each node (its ForgetOne is not public).
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.stats.count(Op::Forget);
        self.forgotten(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.stats.count(Op::Getattr);
        respond("getattr", ino.0, self.fs.getattr(ino.0), reply, |r, e| {
            r.attr(&e.ttl, &file_attr(&e.attr))
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        fh: Option<FileHandle>,
        crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.stats.count(Op::Setattr);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
            crtime,
            fh: fh.and_then(handle),
        };
        let res = self.fs.setattr(&caller(req), ino.0, set);
        respond("setattr", ino.0, res, reply, |r, e| {
            r.attr(&e.ttl, &file_attr(&e.attr))
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.stats.count(Op::Readlink);
        use std::os::unix::ffi::OsStrExt;
        respond("readlink", ino.0, self.fs.readlink(ino.0), reply, |r, t| {
            r.data(t.as_bytes())
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.stats.count(Op::Mknod);
        let (kind, perm) = special_file(mode & !umask);
        let res = self
            .fs
            .mknod(&caller(req), parent.0, name, kind, perm, rdev.into());
        respond("mknod", parent.0, res, reply, |r, e| self.entry_reply(r, e));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.stats.count(Op::Mkdir);
        let perm = (mode & !umask & 0o7777) as u16;
        let res = self.fs.mkdir(&caller(req), parent.0, name, perm);
        respond("mkdir", parent.0, res, reply, |r, e| self.entry_reply(r, e));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.stats.count(Op::Unlink);
        let res = self.fs.unlink(parent.0, name);
        respond("unlink", parent.0, res, reply, empty_reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.stats.count(Op::Rmdir);
        let res = self.fs.rmdir(parent.0, name);
        respond("rmdir", parent.0, res, reply, empty_reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.stats.count(Op::Symlink);
        let res = self.fs.symlink(&caller(req), parent.0, link_name, target);
        respond("symlink", parent.0, res, reply, |r, e| {
            self.entry_reply(r, e)
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Rename);
        let res = rename_flags(flags)
            .and_then(|flags| self.fs.rename(parent.0, name, newparent.0, newname, flags));
        respond("rename", parent.0, res, reply, empty_reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.stats.count(Op::Link);
        let res = self.fs.link(ino.0, newparent.0, newname);
        respond("link", ino.0, res, reply, |r, e| self.entry_reply(r, e));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.stats.count(Op::Open);
        if self.skip_opens {
            // The kernel takes ENOSYS to mean "opens need no answer" and opens every file
            // itself from now on (with handle 0 and its page cache kept).
            return reply.error(Errno::ENOSYS);
        }
        let res = self.fs.open(ino.0, &open_request(flags.0));
        respond("open", ino.0, res, reply, |r, o| self.opened(ino.0, o, r));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.stats.count(Op::Create);
        let perm = (mode & !umask & 0o7777) as u16;
        let res = self
            .fs
            .create(&caller(req), parent.0, name, perm, &open_request(flags));
        respond("create", parent.0, res, reply, |r, eo| self.created(eo, r));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.stats.count(Op::Read);
        let res = self.fs.read(ino.0, handle(fh), offset, size);
        respond("read", ino.0, res, reply, |r, d| r.data(&d));
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.stats.count(Op::Write);
        let res = self.fs.write(ino.0, handle(fh), offset, data);
        respond("write", ino.0, res, reply, |r, n| r.written(n));
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Flush);
        let res = self.fs.flush(ino.0, handle(fh));
        respond("flush", ino.0, res, reply, empty_reply);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Release);
        self.fs.release(ino.0, fh.0);
        self.passthrough.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Fsync);
        let res = self.fs.fsync(ino.0, handle(fh), datasync);
        respond("fsync", ino.0, res, reply, empty_reply);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Fallocate);
        let res =
            allocate(offset, length, mode).and_then(|how| self.fs.allocate(ino.0, handle(fh), how));
        respond("fallocate", ino.0, res, reply, empty_reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.stats.count(Op::Opendir);
        // The core lists directories without handles: the kernel takes ENOSYS to mean
        // "opendir needs no answer", opens directories itself from now on and caches
        // their listings (nothing changes them behind its back).
        let _ = ino;
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.stats.count(Op::Readdir);
        let _ = fh;
        let res = self.fs.readdir(ino.0, offset);
        respond("readdir", ino.0, res, reply, |mut r, entries| {
            for e in &entries {
                let kind = file_type(e.kind);
                if r.add(INodeNo(e.ino), e.offset, kind, &e.name) {
                    break;
                }
            }
            r.ok();
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.stats.count(Op::Readdirplus);
        let _ = fh;
        let entries = match self.fs.readdir(ino.0, offset) {
            Ok(entries) => entries,
            Err(err) => return fail("readdirplus", ino.0, &err, reply),
        };
        let mut added = 0;
        for e in &entries {
            let (entry, counted) = if is_dot(&e.name) {
                // (the kernel takes nothing but the name, inode and type of "." and ".."
                // from readdirplus — fs/fuse/readdir.c, fuse_direntplus_link — so their
                // attributes are not asked for: for a directory of the venv's own, that
                // would be a stat of the upper layer, a request to the server when the
                // venv is on a network filesystem)
                (listing_entry(e), false)
            } else {
                match self.plus_entry(ino.0, &e.name) {
                    Ok(Some(entry)) => (entry, true),
                    Ok(None) => continue,
                    // Send what we have; the kernel asks again from the failed entry.
                    Err(err) if added > 0 => {
                        log_failure("readdirplus", ino.0, &err, errno(&err));
                        break;
                    }
                    Err(err) => return fail("readdirplus", ino.0, &err, reply),
                }
            };
            let attr = file_attr(&entry.attr);
            if reply.add(attr.ino, e.offset, &e.name, &entry.ttl, &attr, GENERATION) {
                break; // full: not sent
            }
            if counted {
                // the kernel counts a lookup for every entry it gets but "." and ".."
                self.looked_up(&entry);
            }
            added += 1;
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Releasedir);
        self.fs.releasedir(ino.0, fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Fsyncdir);
        // The core has no directory sync; say so once and the kernel stops asking.
        reply.error(Errno::ENOSYS);
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.stats.count(Op::Statfs);
        respond("statfs", ino.0, self.fs.statfs(), reply, |r, s| {
            r.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            )
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.stats.count(Op::Setxattr);
        let res = xattr_set(flags).and_then(|how| self.fs.setxattr(ino.0, name, value, how));
        respond("setxattr", ino.0, res, reply, empty_reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.stats.count(Op::Getxattr);
        let res = self.fs.getxattr(ino.0, name, size);
        respond("getxattr", ino.0, res, reply, xattr_reply(size));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.stats.count(Op::Listxattr);
        let res = self.fs.listxattr(ino.0, size);
        respond("listxattr", ino.0, res, reply, xattr_reply(size));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.stats.count(Op::Removexattr);
        let res = self.fs.removexattr(ino.0, name);
        respond("removexattr", ino.0, res, reply, empty_reply);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        self.stats.count(Op::Access);
        // Mounted with default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.stats.count(Op::Ioctl);
        // isatty() on every Python open() ends up here; answer quietly.
        reply.error(Errno::ENOTTY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_flag_translation() {
        let f = rename_flags(RenameFlags::empty()).expect("plain");
        assert!(!f.noreplace && !f.exchange);
        let f = rename_flags(RenameFlags::RENAME_NOREPLACE).expect("noreplace");
        assert!(f.noreplace && !f.exchange);
        let f = rename_flags(RenameFlags::RENAME_EXCHANGE).expect("exchange");
        assert!(!f.noreplace && f.exchange);
        assert!(rename_flags(RenameFlags::RENAME_WHITEOUT).is_err());
        assert!(rename_flags(RenameFlags::from_bits_retain(1 << 7)).is_err());
    }

    #[test]
    fn xattr_flag_translation() {
        assert_eq!(xattr_set(0).ok(), Some(XattrSet::Any));
        assert_eq!(xattr_set(libc::XATTR_CREATE).ok(), Some(XattrSet::Create));
        assert_eq!(xattr_set(libc::XATTR_REPLACE).ok(), Some(XattrSet::Replace));
        assert!(xattr_set(libc::XATTR_CREATE | libc::XATTR_REPLACE).is_err());
    }
}
