use std::error::Error;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use venvfs::cli::{Cli, Command, LayerCommand};
use venvfs::manifest::{manifest_path, Manifest};

fn main() -> ExitCode {
    let cli = Cli::parse();
    venvfs::logging::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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
        Command::Status => venvfs::daemon::status(),
        Command::Create { venv, python } => create(&venv, &python),
        Command::Install { venv, sources } => install(&venv, &sources),
        Command::Uninstall { venv, names } => uninstall(&venv, &names),
        Command::Layer(cmd) => layer(cmd),
    }
}

fn create(venv: &Path, python: &str) -> Result<(), Box<dyn Error>> {
    let interpreter = if python.chars().all(|c| c.is_ascii_digit() || c == '.') {
        format!("python{python}")
    } else {
        python.to_owned()
    };
    if venvfs::daemon::venv_is_mounted(venv) {
        return Err(format!("{} is mounted; unmount it first", venv.display()).into());
    }
    let status = std::process::Command::new(&interpreter)
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
    println!(
        "Created {} (Python {version}); add packages with `venvfs install {} WHEEL...`",
        venv.display(),
        venv.display()
    );
    Ok(())
}

fn install(venv: &Path, sources: &[std::path::PathBuf]) -> Result<(), Box<dyn Error>> {
    let started = std::time::Instant::now();
    let (path, mut manifest) = editable_manifest(venv)?;
    let version = venvfs::venv::python_version(venv)?;
    let venv = venv.canonicalize()?;
    // Read and check everything before writing anything.
    let mut plans = Vec::new();
    for source in sources {
        let abs = source
            .canonicalize()
            .map_err(|e| format!("{}: {e}", source.display()))?;
        plans.push(venvfs::install::apply::plan(&abs, &venv, &version)?);
    }
    let mut written = Vec::new();
    for plan in &plans {
        match venvfs::install::apply::write(&venv, &plan.generated) {
            Ok(files) => written.extend(files),
            Err(e) => {
                for f in &written {
                    let _ = std::fs::remove_file(f);
                }
                return Err(format!(
                    "writing into {}: {e}; nothing was installed",
                    venv.display()
                )
                .into());
            }
        }
    }
    let labels: Vec<String> = plans.iter().map(|p| p.layer.label()).collect();
    for plan in plans.into_iter().rev() {
        manifest
            .layers
            .retain(|l| l.name.is_empty() || l.name != plan.layer.name);
        manifest.layers.insert(0, plan.layer);
    }
    manifest.save(&path)?;
    venvfs::venv::write_unmounted_guard(&venv)?;
    let n = labels.len();
    let s = if n == 1 { "" } else { "s" };
    println!(
        "Installed {n} package{s} in {} ms",
        started.elapsed().as_millis()
    );
    for l in labels {
        println!(" + {l}");
    }
    Ok(())
}

fn uninstall(venv: &Path, names: &[String]) -> Result<(), Box<dyn Error>> {
    use venvfs::install::generated::normalize_name;
    let started = std::time::Instant::now();
    let (path, mut manifest) = editable_manifest(venv)?;
    let version = venvfs::venv::python_version(venv)?;
    let venv = venv.canonicalize()?;
    // Check every name before changing anything.
    let mut chosen = Vec::new();
    for name in names {
        let wanted = normalize_name(name);
        let layer = manifest
            .layers
            .iter()
            .find(|l| normalize_name(&l.name) == wanted)
            .ok_or_else(|| {
                format!(
                    "{name} is not installed in {} (`venvfs layer list` shows what is)",
                    venv.display()
                )
            })?;
        chosen.push(layer.clone());
    }
    // The manifest first: a crash after it leaves only unused generated files behind.
    manifest.layers.retain(|l| !chosen.contains(l));
    manifest.save(&path)?;
    for layer in &chosen {
        venvfs::install::apply::remove_generated(&venv, layer, &version)?;
    }
    let n = chosen.len();
    let s = if n == 1 { "" } else { "s" };
    println!(
        "Uninstalled {n} package{s} in {} ms",
        started.elapsed().as_millis()
    );
    for l in &chosen {
        println!(" - {}", l.label());
    }
    Ok(())
}

fn layer(cmd: LayerCommand) -> Result<(), Box<dyn Error>> {
    match cmd {
        LayerCommand::Add { venv, sources } => {
            let (path, mut manifest) = editable_manifest(&venv)?;
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
                manifest
                    .layers
                    .retain(|l| l.name.is_empty() || l.name != layer.name);
                println!(" + {}", layer.label());
                manifest.layers.insert(0, layer);
            }
            manifest.save(&path)?;
            venvfs::venv::write_unmounted_guard(&venv)?;
            Ok(())
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
            let (path, mut manifest) = editable_manifest(&venv)?;
            for name in &names {
                let before = manifest.layers.len();
                manifest.layers.retain(|l| &l.name != name);
                if manifest.layers.len() == before {
                    return Err(format!("{}: no layer named {name}", path.display()).into());
                }
                println!(" - {name}");
            }
            manifest.save(&path)?;
            Ok(())
        }
    }
}

/// The manifest of a venv that is not mounted (a mounted venv hides its .venvfs directory).
fn editable_manifest(venv: &Path) -> Result<(std::path::PathBuf, Manifest), Box<dyn Error>> {
    if venvfs::daemon::venv_is_mounted(venv) {
        return Err(format!(
            "{} is mounted; unmount it first (`venvfs umount {}`), change its layers, then mount it again",
            venv.display(),
            venv.display()
        )
        .into());
    }
    venvfs::venv::python_version(venv)?;
    let path = manifest_path(venv);
    let manifest = Manifest::load(&path)?;
    Ok((path, manifest))
}
