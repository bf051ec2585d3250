//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "venvfs",
    version,
    about = "Serve a Python package cache as a virtual environment",
    long_about = "venvfs presents a venv as an overlay filesystem: its packages are read-only \
layers served straight from the wheel cache (uv's unpacked archives or .whl files), whatever \
disk they are on, and every write goes to the venv's own directory. Nothing is copied at \
install time and the cache is never modified.\n\n\
Typical use:\n  venvfs create .venv\n  venvfs sync .venv pylock.toml      \
# or a requirements.txt of name==version pins; wheels come from uv's cache, else are fetched\n  \
venvfs mount .venv\n  .venv/bin/python -c 'import numpy'\n  venvfs umount .venv"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a venv: show its layers merged over its own directory, in place.
    Mount(MountArgs),
    /// Unmount a venv mounted by `venvfs mount`.
    #[command(alias = "unmount")]
    Umount(UmountArgs),
    /// List mounted venvs, the distributions they show and where those come from, and the
    /// size of their own (upper) content.
    Status(StatusArgs),
    /// Run one command in a venv mounted for it alone: a private mount namespace holds the
    /// mount, which no other process sees and which is gone when the command ends, whatever
    /// happens (the command killed, venvfs killed, Ctrl-C); the command's exit code comes
    /// back. For batch jobs: `venvfs run $VENV -- python train.py`. As root, or as a user
    /// where the kernel allows user namespaces and /dev/fuse is open to the user. A venv
    /// already mounted is used as it is.
    Run(RunArgs),
    /// Compile the bytecode of every module a venv's layers hold into the shared bytecode
    /// store, ahead of the first import, so that no venv using those layers (a container,
    /// a cluster node, a fresh venv) compiles them again.
    #[command(
        long_about = "Compile the bytecode of every module a venv's layers hold into the \
shared bytecode store, ahead of the first import, so that no venv using those layers (a \
container, a cluster node, a fresh venv) compiles them again.\n\n\
Given layer sources instead of a venv (`.whl` files, unpacked wheels, uv cache \
directories), compiles them for --python as any venv of that Python using them would \
(through venvs of its own made and removed on the way).\n\n\
A mounted venv shows the `.pyc` files of its layers' modules from a store outside the \
venv, one copy per layer and Python version, shared by every venv that uses the same \
layers: the first import anywhere compiles a module, every later one reads it. The store \
written is $VENVFS_BYTECODE_STORE, else `bytecode/` in venvfs's cache directory \
(~/.cache/venvfs); stores in $VENVFS_BYTECODE_STORES (separated like PATH) are read too, \
so one prepared next to a shared read-only cache serves every user. \
VENVFS_SHARED_BYTECODE=0 keeps bytecode in each venv instead.\n\n\
Python checks each `.pyc` as it always does (the module's modification time and size in \
its header); venvfs also never shows one that does not match the module the venv shows, \
so a stale or foreign `.pyc` is compiled again, not served. Modules you edited get their \
own `.pyc` in the venv, as before. PYTHONDONTWRITEBYTECODE and PYTHONPYCACHEPREFIX keep \
their meaning.\n\n\
The venv is compiled through its mount (a private one, as `venvfs run` makes, when it is \
not mounted), by the venv's own Python, several processes at once, with a progress bar."
    )]
    Compile(CompileArgs),
    /// List the distributions a venv holds, as Python sees them, and where each one's files
    /// come from: a layer, references (symlinks into uv's cache), or copies in the venv's
    /// own directory (installed through the mount by pip or uv).
    List(ListArgs),
    /// Create a venv (PEP 405) with the given interpreter, ready for `venvfs install`.
    /// A venv made by `uv venv` or `python -m venv` works as well.
    Create {
        venv: PathBuf,
        /// The interpreter: a path, or a version such as 3.11 (found as python3.11 on PATH).
        #[arg(long, short = 'p', default_value = "python3")]
        python: String,
    },
    /// Make the venv hold exactly the distributions pinned in a pylock.toml or a
    /// requirements file of `name==version` lines, as `uv pip sync` does, without copying:
    /// each wheel becomes a layer. Wheels are looked for in the lock's paths, then
    /// --find-links directories, uv's cache, the wheels venvfs fetched before, and pip's
    /// cache (what pip downloaded, copied into venvfs's wheel store); the rest are fetched
    /// (the lock's URLs, else the package index), checked against their sha256 and kept in
    /// ~/.cache/venvfs/wheels, unless --offline. A mounted venv takes the change live,
    /// without unmounting: programs running in it keep their open files.
    Sync {
        venv: PathBuf,
        /// pylock.toml (or pylock.NAME.toml) or a requirements file.
        file: PathBuf,
        #[command(flatten)]
        finder: FinderArgs,
    },
    /// Install wheels as pip and uv would, but without copying them: each becomes a layer,
    /// and only launchers, RECORD and the other generated files are written into the venv.
    /// A `name==version` pin no local source has is fetched from the package index, unless
    /// --offline. A mounted venv takes the change live, without unmounting.
    Install {
        venv: PathBuf,
        /// `.whl` files, unpacked wheel directories, or `name==version` pins to look up.
        #[arg(required = true)]
        targets: Vec<String>,
        #[command(flatten)]
        finder: FinderArgs,
    },
    /// Uninstall distributions by name: drop their layers and what installing them wrote into
    /// the venv (launchers, RECORD, ...), and edits made to their files.
    Uninstall {
        venv: PathBuf,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Fold the links uv's symlink link mode makes into its cache (one per file of a
    /// package) into layers: each distribution whose links all point into one unpacked
    /// wheel of uv's cache becomes a layer of it, and its links are removed, so the venv's
    /// own directory keeps only uv's generated files (RECORD, INSTALLER, launchers). What
    /// the venv shows does not change. `sync` and `install` do it too when links exist.
    /// A mounted venv takes the change live.
    Fold { venv: PathBuf },
    /// Turn a venv that uv or pip filled with copies into a venvfs venv, giving back the
    /// disk of every copy a layer can serve.
    #[command(
        long_about = "Turn a venv that uv or pip filled with copies (uv's copy link \
mode, pip) into a venvfs venv, and give back the disk the copies take.\n\n\
Each installed distribution (a .dist-info with a RECORD in the venv's site-packages) for \
which uv's cache, a --find-links directory, the wheels `python -m venv` installs pip and \
setuptools from (the interpreter's ensurepip), the wheel file it was installed from, \
venvfs's wheel store, or pip's cache (what pip downloaded: $PIP_CACHE_DIR, else the \
cache-dir of pip's configuration files, else ~/.cache/pip; a wheel found there is \
copied into venvfs's wheel store first, since pip prunes its cache as it likes) has the same wheel (same name and version, a \
tag this interpreter accepts; among several, the one whose RECORD agrees most with the \
installed one) becomes a layer of that wheel, and each copy whose bytes and mode equal the layer's file is removed. What \
differs stays in the venv's own directory and keeps showing: files you edited, and what \
the installer wrote (RECORD, INSTALLER, console-script launchers, #!python scripts with \
the venv's interpreter). Files of the wheel that were deleted from the venv stay hidden. \
A distribution with no such wheel keeps its copies, and a note says so; nothing is \
downloaded.\n\n\
What the venv shows does not change: the same files and contents, the same `pip list` and \
importlib.metadata. Afterwards it is used mounted (`venvfs mount VENV`); a mounted venv \
takes the change live.\n\n\
Safe to interrupt at any point (Ctrl-C, kill -9, power loss): the layers are committed \
before any copy is removed, and a copy shadows its layer's file, so every intermediate \
state shows the same bytes. Running adopt again, or the next `venvfs mount`, finishes the \
job.\n\n\
Prints one line per distribution adopted and the disk given back (the blocks of the \
copies removed; a copy hard-linked elsewhere gives none)."
    )]
    Adopt {
        /// The venv directory, mounted or not.
        venv: PathBuf,
        /// A directory of `.whl` files to look in (may be repeated).
        #[arg(long = "find-links", short = 'f', value_name = "DIR")]
        find_links: Vec<PathBuf>,
        /// uv's cache directory (may be repeated: looked in in order) [default: $UV_CACHE_DIR,
        /// else $XDG_CACHE_HOME/uv, else ~/.cache/uv]; those of $VENVFS_EXTRA_CACHE_DIRS come
        /// after.
        #[arg(long = "cache-dir", value_name = "DIR")]
        cache_dir: Vec<PathBuf>,
        /// Do not look in uv's cache or pip's.
        #[arg(long)]
        no_cache: bool,
    },
    /// Turn a venvfs venv into a plain venv that needs no mount (for a container image, or
    /// a machine without FUSE): the files the mount shows, taken from the layers, with the
    /// venv's own edits.
    #[command(
        long_about = "Turn a venvfs venv into a plain venv that needs no mount (for a container \
image, or a machine without FUSE): the same files as `uv pip install` of the same wheels, \
taken from the layers, with the venv's own files and edits (what `venvfs mount` shows, \
permissions and modification times included). venvfs's own state goes: the .venvfs \
directory, the overlay markers, the unmounted-venv guard, and the uv link mode that \
bin/activate sets.\n\n\
The plain venv is built beside the venv (VENV.materializing-PID, on the same filesystem) \
and swapped in with one atomic exchange of the two directories, then the old one is \
removed: an interrupted run (even kill -9) leaves either the venvfs venv or the complete \
plain venv at VENV, and the next run removes what it left beside it. The venv must not \
be mounted: run `venvfs umount VENV` first.\n\n\
--link-mode says how files of unpacked-wheel layers (uv's cache), and the cache files \
that links of uv's symlink link mode point to, get into the venv: `clone` (the \
default) makes a copy-on-write clone (reflink) where the filesystem can (btrfs, XFS, \
bcachefs, ...), else copies, as uv's clone mode does; `copy` always copies; \
`hardlink` links the cache's files (falling back to a copy across filesystems, as uv \
does): no space is used, but an edit of such a file in the venv edits uv's cache, and \
every venv linked to it. Members of .whl layers are always copied (a wheel file has no \
file per member to link or clone), and the venv's own files are copied (cloned in clone \
mode)."
    )]
    Materialize(MaterializeArgs),
    /// Add, list or remove a venv's read-only layers.
    #[command(subcommand)]
    Layer(LayerCommand),
    /// Check what mounting and serving venvs needs, and one venv if named: one report, each
    /// finding with the command that fixes it.
    #[command(
        long_about = "Check what mounting and serving venvs needs, in one report.\n\n\
Always: whether FUSE is usable by this user (/dev/fuse, fusermount3; user namespaces as \
information) and where uv's cache is (filesystem, device, free space).\n\n\
With VENV: whether it is a venv and a venvfs venv, whether it is mounted by a live daemon \
or left stale by one that died, layers whose source is gone from the cache, where its \
distributions come from (layers, references into uv's cache, copies a layer could serve), \
the filesystem it is on and whether uv would hardlink its cache into it or copy every file, \
whether uv is told to link packages (UV_LINK_MODE=symlink, a pyproject.toml link-mode), and \
an sshfs that hides the venv's absolute interpreter link (bin/python, or the python3.X it \
points to).\n\n\
Each line is ok (information), warn (works, or is a state you chose, but costs something: \
an unmounted venvfs venv, copies) or fail (broken), and says the command that fixes it. \
Exits 1 when anything fails, 0 otherwise."
    )]
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// The venv directory (it must exist and have a pyvenv.cfg).
    pub venv: PathBuf,
    /// Stay attached to the terminal instead of running in the background; Ctrl-C unmounts.
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Let other users read through the mount (needs `user_allow_other` in /etc/fuse.conf
    /// unless you are root).
    #[arg(long)]
    pub allow_other: bool,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Hand big files of directory layers to the kernel (FUSE passthrough; kernel 6.9+,
    /// as root): their reads skip the daemon and share the cache directory's page cache.
    /// It costs a round trip to the daemon per open of any file, which the default mode
    /// spares (Python opens a file per imported module).
    #[arg(long)]
    pub passthrough: bool,
    /// Memory for decompressed `.whl` members, and as much again for what was read of
    /// layer files and stored `.pyc` files on a network filesystem, in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_cache_mib: u64,
    /// Where large `.whl` members are decompressed to (default: the system temp dir).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Internal: set by `venvfs mount` on the background process it starts.
    #[arg(long, hide = true)]
    pub daemon_child: bool,
}

#[derive(Debug, Args)]
pub struct MaterializeArgs {
    /// The venv directory (a venvfs venv, not mounted).
    pub venv: PathBuf,
    /// How files of unpacked-wheel layers get into the venv.
    #[arg(long, value_enum, default_value_t = LinkMode::Clone)]
    pub link_mode: LinkMode,
}

/// How `materialize` puts a layer's file into the plain venv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkMode {
    /// A copy-on-write clone (reflink) where the filesystem can, else a copy.
    Clone,
    /// A hard link to the cache's file (a copy across filesystems): edits reach the cache.
    Hardlink,
    /// A copy.
    Copy,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The venv directory.
    pub venv: PathBuf,
    /// (internal) Be the guard between `venvfs run` process PID and the command: see
    /// `daemon/guard.rs`.
    #[arg(long, hide = true, value_name = "PID")]
    pub guard_of: Option<i32>,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// A venv directory (mounted or not); or layer sources to compile without a venv:
    /// `.whl` files, unpacked wheels, and uv cache directories (every unpacked wheel in
    /// them).
    #[arg(required = true, value_name = "VENV|SOURCES")]
    pub targets: Vec<PathBuf>,
    /// The interpreter to compile SOURCES for: a path, or a version such as 3.11 (the
    /// `.pyc` of a venv are its own Python's).
    #[arg(long, short = 'p', default_value = "python3")]
    pub python: String,
    /// The store to write, instead of the default one (for a store prepared ahead and
    /// shared read-only: point $VENVFS_BYTECODE_STORES at it). The venv must not be
    /// mounted then.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Processes compiling at once [default: the number of CPUs].
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this venv (with none: every venv venvfs has mounted). Exits non-zero when it is
    /// not mounted.
    pub venv: Option<PathBuf>,
    /// Also show how many requests of each kind each daemon has served since it mounted
    /// (what reached the daemon: the kernel answers the rest from its caches).
    #[arg(long)]
    pub requests: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The venv directory, mounted or not.
    pub venv: PathBuf,
    /// Print a JSON array of objects (name, version, origin, ...) instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A venv to examine as well, mounted or not.
    pub venv: Option<PathBuf>,
    /// Print a JSON array of objects (check, status: ok|warn|fail, detail, fix) instead of
    /// lines.
    #[arg(long)]
    pub json: bool,
}

/// Where `sync` and `install` look for wheels, and where they fetch the missing ones.
#[derive(Debug, Args, Clone, Default)]
pub struct FinderArgs {
    /// A directory of `.whl` files to look in, or the http(s) URL of a page of links to
    /// wheels, asked before the index (may be repeated).
    #[arg(long = "find-links", short = 'f', value_name = "DIR|URL")]
    pub find_links: Vec<PathBuf>,
    /// uv's cache directory (may be repeated: looked in in order) [default: $UV_CACHE_DIR,
    /// else $XDG_CACHE_HOME/uv, else ~/.cache/uv]; those of $VENVFS_EXTRA_CACHE_DIRS come
    /// after.
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Vec<PathBuf>,
    /// Do not look in uv's cache or pip's.
    #[arg(long)]
    pub no_cache: bool,
    /// Refuse any wheel whose sha256 cannot be checked against a pinned hash (unpacked wheels
    /// in uv's cache have no wheel file left to hash).
    #[arg(long)]
    pub require_hashes: bool,
    /// The package index (PEP 503/691 simple API) that pins no local source has are fetched
    /// from [default: the pin file's --index-url, else $UV_INDEX_URL, else $PIP_INDEX_URL,
    /// else https://pypi.org/simple/].
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,
    /// Another index, asked after --index-url (may be repeated). The first index with a
    /// fitting wheel of the pinned version wins.
    #[arg(long = "extra-index-url", value_name = "URL")]
    pub extra_index_url: Vec<String>,
    /// Never use the network: a pin that no local source has is an error instead of a
    /// download [env: VENVFS_OFFLINE=1].
    #[arg(long, env = "VENVFS_OFFLINE", hide_env = true,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct UmountArgs {
    pub venv: PathBuf,
    /// Detach now even if files are open; the mount goes away when they are closed.
    #[arg(long, short = 'l')]
    pub lazy: bool,
}

#[derive(Debug, Subcommand)]
pub enum LayerCommand {
    /// Add wheels (`.whl` files or unpacked wheel directories) as layers, on top.
    Add {
        venv: PathBuf,
        #[arg(required = true)]
        sources: Vec<PathBuf>,
    },
    /// List a venv's layers, top first.
    List { venv: PathBuf },
    /// Remove layers by distribution name.
    Remove {
        venv: PathBuf,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

impl Command {
    /// The venv a command works on, for commands that need it readable as it is (not
    /// `mount`, `umount`, `status` and `doctor`, which deal with a dead mount themselves).
    pub fn venv(&self) -> Option<&std::path::Path> {
        match self {
            Command::Run(a) => Some(&a.venv),
            Command::List(a) => Some(&a.venv),
            Command::Materialize(a) => Some(&a.venv),
            Command::Sync { venv, .. }
            | Command::Install { venv, .. }
            | Command::Uninstall { venv, .. }
            | Command::Fold { venv }
            | Command::Adopt { venv, .. } => Some(venv),
            Command::Layer(
                LayerCommand::Add { venv, .. }
                | LayerCommand::List { venv }
                | LayerCommand::Remove { venv, .. },
            ) => Some(venv),
            Command::Compile(a) => a.targets.first().map(PathBuf::as_path),
            Command::Mount(_)
            | Command::Umount(_)
            | Command::Status(_)
            | Command::Doctor(_)
            | Command::Create { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn offline_from_the_environment() {
        let parse = || {
            let cli = Cli::parse_from(["venvfs", "install", "v", "x==1"]);
            let Command::Install { finder, .. } = cli.command else {
                panic!()
            };
            finder.offline
        };
        // (one test changes the variable: tests run in threads of one process)
        std::env::set_var("VENVFS_OFFLINE", "1");
        assert!(parse());
        std::env::set_var("VENVFS_OFFLINE", "0");
        assert!(!parse());
        std::env::remove_var("VENVFS_OFFLINE");
        assert!(!parse());
    }

    #[test]
    fn mount_defaults() {
        let cli = Cli::parse_from(["venvfs", "mount", ".venv"]);
        let Command::Mount(m) = cli.command else {
            panic!()
        };
        assert!(!m.foreground && !m.allow_other && m.threads == 4);
    }
}
