use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use venvfs::cli::{Cli, Command, FinderArgs, LayerCommand, ListArgs};
use venvfs::install::sync::{self, Mode, Options, Report, Target};
use venvfs::manifest::{manifest_path, Manifest};
use venvfs::name::PackageName;

fn main() -> ExitCode {
    // `venvfs ... | head` ends quietly when head exits, as command-line tools do, instead
    // of panicking on a write to a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal at startup, before threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    venvfs::logging::init();
    if let Command::Doctor(args) = &cli.command {
        return venvfs::doctor::main(args);
    }
    let venv = cli.command.venv().map(Path::to_owned);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // (whatever read failed first, this is what happened, and the one thing to do)
        Err(_) if venv.as_deref().is_some_and(venvfs::daemon::is_stale) => {
            let shown = venv.unwrap_or_default();
            let shown = shown.display();
            eprintln!(
                "error: {shown}: its venvfs daemon died and left the mount behind\n  \
                 run `venvfs mount {shown}` to mount it again (or `venvfs umount {shown}` to \
                 leave it unmounted)"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    match cli.command {
        Command::Mount(args) => venvfs::daemon::mount(args),
        Command::Umount(args) => venvfs::daemon::umount(args),
        Command::Status(args) => venvfs::daemon::status(&args),
        Command::Run(args) => venvfs::daemon::run(args),
        Command::Compile(args) => venvfs::bytecode::compile::compile(&args),
        Command::List(args) => list(&args),
        Command::Create { venv, python } => create(&venv, &python),
        Command::Sync { venv, file, finder } => sync(&venv, &file, &finder),
        Command::Install {
            venv,
            targets,
            finder,
        } => install(&venv, &targets, &finder),
        Command::Uninstall { venv, names } => uninstall(&venv, &names),
        Command::Fold { venv } => fold(&venv),
        Command::Adopt {
            venv,
            find_links,
            cache_dir,
            no_cache,
        } => adopt(&venv, find_links, cache_dir, no_cache),
        Command::Layer(cmd) => layer(cmd),
        Command::Materialize(args) => materialize(&args),
        Command::Doctor(_) => unreachable!("answered in main"),
    }
}

#[cfg(target_os = "linux")]
fn materialize(args: &venvfs::cli::MaterializeArgs) -> Result<(), Box<dyn Error>> {
    venvfs::materialize::materialize(args)
}

#[cfg(not(target_os = "linux"))]
fn materialize(_args: &venvfs::cli::MaterializeArgs) -> Result<(), Box<dyn Error>> {
    Err("venvfs materialize is only built for Linux so far".into())
}

fn create(venv: &Path, python: &str) -> Result<(), Box<dyn Error>> {
    let (program, leading) =
        venvfs::venv::interpreter_command(python, venvfs::install::layout::OsName::current());
    let interpreter = [&program]
        .into_iter()
        .chain(&leading)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if venvfs::daemon::venv_is_mounted(venv) {
        return Err(format!("{} is mounted; unmount it first", venv.display()).into());
    }
    let status = std::process::Command::new(&program)
        .args(&leading)
        .args(["-m", "venv", "--without-pip"])
        .arg(venv)
        .status()
        .map_err(|e| {
            format!("cannot run {interpreter}: {e}; name an interpreter with --python PATH or X.Y")
        })?;
    if !status.success() {
        return Err(format!(
            "`{interpreter} -m venv --without-pip {}` failed ({status})",
            venv.display()
        )
        .into());
    }
    let version = venvfs::venv::python_version(venv)?;
    venvfs::activate::set_link_mode(venv).map_err(|e| {
        let dir = venvfs::activate::scripts_dir(venv);
        format!("{}: {e}", dir.display())
    })?;
    println!(
        "Created {} (Python {version}); fill it with `venvfs sync {} pylock.toml` (or \
         requirements.txt), or `venvfs install {} WHEEL...`",
        venv.display(),
        venv.display(),
        venv.display()
    );
    if let Some(hint) = venvfs::activate::project_hint(venv) {
        eprintln!("{hint}");
    }
    Ok(())
}

/// `venvfs list`: one line per distribution, `name==version` and where it comes from.
fn list(args: &ListArgs) -> Result<(), Box<dyn Error>> {
    let inv = venvfs::inventory::of_venv(&args.venv)?;
    if args.json {
        let all: Vec<serde_json::Value> = inv.dists.iter().map(|d| d.to_json()).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    for line in inv.table() {
        println!("{line}");
    }
    for p in inv.problems() {
        eprintln!("note: {p}");
    }
    Ok(())
}

/// The options of `sync` and `install`; `file` is what the pin file adds (its `-f`
/// directories and index options).
fn options(finder: &FinderArgs, file: &venvfs::pins::PinFile) -> Options {
    let mut logins = venvfs::fetch::auth::Logins::new();
    let mut find_links = Vec::new();
    let mut pages = Vec::new();
    let mut bad_page = None;
    for d in finder.find_links.iter().chain(&file.find_links) {
        match d.to_str().filter(|s| venvfs::fetch::is_page_url(s)) {
            Some(url) => match venvfs::fetch::find_links_url(url, &mut logins) {
                Ok(u) => pages.push(u),
                Err(e) => bad_page = Some(e),
            },
            // (absolute: layers from them are recorded by path, and read by the daemon too)
            None => find_links.push(std::path::absolute(d).unwrap_or_else(|_| d.clone())),
        }
    }
    let indexes = venvfs::fetch::indexes(
        finder.index_url.as_deref(),
        &finder.extra_index_url,
        &venvfs::fetch::FileIndexes {
            index_url: file.index_url.as_deref(),
            extra: &file.extra_index_urls,
            no_index: file.no_index,
        },
        &mut logins,
    );
    Options {
        find_links,
        cache_dirs: finder.cache_dir.clone(),
        no_cache: finder.no_cache,
        require_hashes: finder.require_hashes,
        keep: Vec::new(),
        fetch: venvfs::fetch::Settings {
            offline: finder.offline,
            // (a bad find-links URL is reported when fetching, as a bad index is)
            indexes: match bad_page {
                Some(e) => Err(e),
                None => indexes,
            },
            find_links: pages,
            logins,
        },
    }
}

fn print_report(report: &Report) {
    for line in report.lines() {
        println!("{line}");
    }
}

fn sync(venv: &Path, file: &Path, finder: &FinderArgs) -> Result<(), Box<dyn Error>> {
    venvfs::venv::python_version(venv)?;
    // (through the mount when mounted: pyvenv.cfg and bin/python are there too)
    let interpreter = venvfs::interpreter::of_venv(venv)?;
    let pins = venvfs::pins::load(file, &interpreter.marker_env()?)?;
    for (name, origin) in &pins.editable {
        eprintln!(
            "note: {name} ({origin}) is an editable local project, which venvfs does not build; \
             once mounted, install it with `uv pip install --python {} -e DIR` (sync keeps it)",
            venv.display()
        );
    }
    let mut opts = options(finder, &pins);
    let targets: Vec<Target> = pins.pins.into_iter().map(Target::Pin).collect();
    opts.keep = pins
        .editable
        .iter()
        .map(|(n, _)| PackageName::new(n))
        .collect();
    // A mounted venv that already matches is left mounted.
    if venvfs::daemon::venv_is_mounted(venv) {
        let manifest = venvfs::daemon::manifest_of(venv);
        if let Some(report) = sync::up_to_date(venv, &manifest, &targets, Mode::Sync, &opts)? {
            print_report(&report);
            return Ok(());
        }
    }
    let report = venvfs::daemon::change(venv, |root| {
        let report = sync::apply(venv, root, &targets, Mode::Sync, &opts)?;
        let touched = report.touched.clone();
        Ok((report, touched))
    })?;
    print_report(&report);
    fold_after(venv);
    Ok(())
}

fn install(venv: &Path, targets: &[String], finder: &FinderArgs) -> Result<(), Box<dyn Error>> {
    venvfs::venv::python_version(venv)?;
    let mut parsed = Vec::new();
    for t in targets {
        let path = Path::new(t);
        if path.exists() || t.ends_with(".whl") || t.contains(std::path::MAIN_SEPARATOR) {
            parsed.push(Target::Wheel(path.to_owned()));
        } else {
            parsed.push(Target::Pin(venvfs::pins::requirements::parse_pin_arg(t)?));
        }
    }
    let opts = options(finder, &venvfs::pins::PinFile::default());
    let report = venvfs::daemon::change(venv, |root| {
        let report = sync::apply(venv, root, &parsed, Mode::Install, &opts)?;
        let touched = report.touched.clone();
        Ok((report, touched))
    })?;
    print_report(&report);
    fold_after(venv);
    Ok(())
}

/// `venvfs fold`: the links uv made into its cache become layers.
fn fold(venv: &Path) -> Result<(), Box<dyn Error>> {
    let version = venvfs::venv::python_version(venv)?;
    let report = fold_links(venv, &version)?;
    match (report.lines.is_empty(), report.notes.len()) {
        (false, _) => {}
        (true, 0) => println!("Nothing to fold"),
        // (the notes above say which and why; the links keep showing what they show)
        (true, n) => println!(
            "Nothing folded: the links of {n} {} cannot be (see the notes); they keep working as links",
            if n == 1 { "distribution" } else { "distributions" }
        ),
    }
    Ok(())
}

/// `venvfs adopt`: a venv of copies becomes a venvfs venv. Two live changes when mounted:
/// the layers first (the copies still shadow them), then the removal of the copies, done
/// by the daemon itself, so that neither a program running in the venv nor a kill of this
/// command finds a file missing in between.
fn adopt(
    venv: &Path,
    find_links: Vec<PathBuf>,
    cache_dirs: Vec<PathBuf>,
    no_cache: bool,
) -> Result<(), Box<dyn Error>> {
    use venvfs::install::adopt;
    venvfs::venv::python_version(venv)?;
    let started = std::time::Instant::now();
    let opts = adopt::Options {
        find_links: find_links
            .into_iter()
            .map(|d| std::path::absolute(&d).unwrap_or(d))
            .collect(),
        cache_dirs,
        no_cache,
    };
    let plan = venvfs::daemon::change(venv, |root| {
        let plan = adopt::plan(venv, root, &opts)?;
        let touched = adopt::commit_layers(root, &plan)?;
        Ok((plan, touched))
    })?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    if plan.adoptions.is_empty() && plan.prune.is_empty() {
        let own = venvfs::daemon::own_dir_of(venv).unwrap_or_else(|| venv.to_owned());
        adopt::mark_finished(&own)?;
        if plan.linked == 0 {
            println!(
                "Nothing to adopt ({} {} served by layers already)",
                plan.already,
                if plan.already == 1 {
                    "distribution"
                } else {
                    "distributions"
                }
            );
        }
        // (what uv linked into its cache is fold's to make layers of)
        fold_after(venv);
        return Ok(());
    }
    // (a mounted venv's daemon removes them itself, and takes the change in the same step)
    let (files, dirs) = adopt::removals(&plan);
    let (files, bytes) = venvfs::daemon::remove_copies(venv, &files, &dirs, plan.started)?;
    let own = venvfs::daemon::own_dir_of(venv).unwrap_or_else(|| venv.to_owned());
    adopt::mark_finished(&own)?;
    if plan.adoptions.is_empty() {
        println!(
            "Nothing to adopt ({} served by layers already); {} of emptied directories given back",
            plan.already,
            venvfs::inventory::human(bytes)
        );
        fold_after(venv);
        return Ok(());
    }
    let removed = adopt::Removed {
        files,
        bytes,
        ..Default::default()
    };
    for line in adopt::lines(&plan, &removed, started.elapsed()) {
        println!("{line}");
    }
    fold_after(venv);
    if !venvfs::daemon::venv_is_mounted(venv) {
        println!("Mount it to use it: venvfs mount {}", venv.display());
    }
    Ok(())
}

/// Folds the venv's links into layers and prints what was done.
fn fold_links(venv: &Path, version: &str) -> Result<venvfs::install::fold::Report, Box<dyn Error>> {
    // the layers first (the links still shadow their files), then the links, which a
    // mounted venv's daemon removes itself (see fold::commit_layers)
    let committed = venvfs::daemon::change(venv, |root| {
        let committed = venvfs::install::fold::commit_layers(root, version)?;
        let touched = committed.report.touched.clone();
        Ok((committed, touched))
    })?;
    let report = committed.report;
    if !committed.links.is_empty() {
        venvfs::daemon::remove_copies(venv, &committed.links, &committed.dirs, committed.since)?;
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for line in &report.lines {
        println!("{line}");
    }
    Ok(report)
}

/// After `sync` and `install`: folds the links uv's symlink mode left, when there are any
/// (one `lstat` per distribution tells). A failure is only a note: the command's own
/// change is done.
fn fold_after(venv: &Path) {
    let Ok(version) = venvfs::venv::python_version(venv) else {
        return;
    };
    let own = venvfs::daemon::own_dir_of(venv).unwrap_or_else(|| venv.to_owned());
    let layout = venvfs::install::layout::Layout::new(&version);
    if !venvfs::install::fold::has_references(&own, &layout) {
        return;
    }
    if let Err(e) = fold_links(venv, &version) {
        eprintln!(
            "note: the links into uv's cache were not folded into layers: {e}; \
             `venvfs fold {}` tries again",
            venv.display()
        );
    }
}

fn uninstall(venv: &Path, names: &[String]) -> Result<(), Box<dyn Error>> {
    venvfs::venv::python_version(venv)?;
    let report = venvfs::daemon::change(venv, |root| {
        let report = sync::uninstall(venv, root, names)?;
        let touched = report.touched.clone();
        Ok((report, touched))
    })?;
    print_report(&report);
    Ok(())
}

fn layer(cmd: LayerCommand) -> Result<(), Box<dyn Error>> {
    match cmd {
        LayerCommand::Add { venv, sources } => {
            venvfs::venv::python_version(&venv)?;
            venvfs::daemon::change(&venv, |root| {
                let path = manifest_path(root);
                let mut manifest = Manifest::load(&path)?;
                let version = venvfs::venv::python_version(&venv)?;
                // Check every source before changing anything.
                let mut layers = Vec::new();
                for source in &sources {
                    let abs = source
                        .canonicalize()
                        .map_err(|e| format!("{}: {e}", source.display()))?;
                    // an unpacked wheel is checked as mount will check it (symlinks that leave
                    // it, names that are not UTF-8), so a bad one is refused now, not at mount
                    if abs.is_dir() {
                        venvfs::layer::dir::scan(&abs, &abs.display().to_string())?;
                    }
                    layers.push(venvfs::install::wheel_layer(&abs, &version)?);
                }
                for layer in layers.into_iter().rev() {
                    // (another version of the same distribution, however it spells its name)
                    manifest
                        .layers
                        .retain(|l| l.name.is_empty() || l.package_name() != layer.package_name());
                    println!(" + {}", layer.label());
                    manifest.layers.insert(0, layer);
                }
                manifest.save(&path)?;
                venvfs::venv::write_unmounted_guard(root)?;
                Ok(((), Vec::new()))
            })
        }
        LayerCommand::List { venv } => {
            venvfs::venv::python_version(&venv)?;
            let manifest = Manifest::load(&venvfs::daemon::manifest_of(&venv))?;
            for l in &manifest.layers {
                println!("{}\t{}", l.label(), l.source.display());
            }
            Ok(())
        }
        LayerCommand::Remove { venv, names } => {
            venvfs::venv::python_version(&venv)?;
            venvfs::daemon::change(&venv, |root| {
                let path = manifest_path(root);
                let mut manifest = Manifest::load(&path)?;
                let mut removed = Vec::new();
                for name in &names {
                    let wanted = PackageName::new(name);
                    let (gone, kept) = manifest
                        .layers
                        .into_iter()
                        .partition(|l| l.package_name() == wanted);
                    manifest.layers = kept;
                    if gone.is_empty() {
                        return Err(format!("{}: no layer named {name}", path.display()).into());
                    }
                    removed.extend(gone);
                }
                // (the bytecode Python wrote for the layers' modules goes with them)
                let mut txn = venvfs::install::txn::Txn::begin(root)?;
                let cleaned = (|| -> Result<(), Box<dyn Error>> {
                    for layer in &removed {
                        venvfs::install::apply::remove_layer_bytecode(
                            &mut txn, root, layer, &path,
                        )?;
                    }
                    txn.sync()?;
                    manifest.save(&path)?;
                    Ok(())
                })();
                if let Err(e) = cleaned {
                    txn.rollback();
                    return Err(e);
                }
                let layout =
                    venvfs::install::layout::Layout::new(&venvfs::venv::python_version(root)?);
                let touched = txn.commit_touched(&sync::keep_dirs(root, &layout));
                for name in &names {
                    println!(" - {name}");
                }
                let touched = touched
                    .into_iter()
                    .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_owned))
                    .collect();
                Ok(((), touched))
            })
        }
    }
}
