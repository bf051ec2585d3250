//! An sshd of a test's own on 127.0.0.1 (its own host key, configuration and authorized
//! key, on a free port), for tests that mount sshfs; stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run_ok;

pub fn require(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    found.unwrap_or_else(|| {
        panic!(
            "{program} is missing: this test needs sshfs and an ssh server \
             (Debian: apt-get install sshfs openssh-server; .ci/run installs them)"
        )
    })
}

/// An sshd of the test's own on 127.0.0.1, with its own host key, configuration and
/// authorized key; stopped when dropped (also when the test fails).
pub struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        Sshd::start_with("internal-sftp", dir)
    }

    /// An sshd whose SFTP server (OpenSSH's `sftp-server`, not the internal one) appends
    /// every request it answers, with the path it names, to `log`.
    pub fn start_logging(dir: &Path, log: &Path) -> Sshd {
        let server = [
            "/usr/lib/openssh/sftp-server",
            "/usr/libexec/openssh/sftp-server",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("no sftp-server (Debian: apt-get install openssh-sftp-server)");
        std::fs::create_dir_all(dir).unwrap();
        let script = dir.join("sftp-logged");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec {server} -e -l DEBUG3 2>>'{}'\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Sshd::start_with(&script.display().to_string(), dir)
    }

    fn start_with(subsystem: &str, dir: &Path) -> Sshd {
        let sshd = require("sshd");
        let keygen = require("ssh-keygen");
        std::fs::create_dir_all(dir).unwrap();
        for key in ["host_key", "client_key"] {
            run_ok(
                Command::new(&keygen)
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(dir.join(key)),
            );
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // (sshd refuses to start without its privilege separation directory)
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 Subsystem sftp {subsystem}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let me = Sshd {
            child,
            port,
            key: dir.join("client_key"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    /// `sshfs` options reaching this server as root with the test's key.
    pub fn sshfs_options(&self, extra: &str) -> String {
        let mut o = format!(
            "port={},IdentityFile={},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,\
             BatchMode=yes,LogLevel=ERROR",
            self.port,
            self.key.display()
        );
        if !extra.is_empty() {
            o.push(',');
            o.push_str(extra);
        }
        o
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
