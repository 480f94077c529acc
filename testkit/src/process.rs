//! A child server process owned by a test: started with its output in a log file, killed and reaped
//! on drop, and helpers to find binaries, pick free ports and await readiness.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::{Error, Result};

/// A running server process, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(format!("opening log {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io("duplicating a log handle", e))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::io(format!("starting {name}"), e))?;
        Ok(Self {
            name,
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails with the log tail if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        match status {
            None if self.child.is_some() => Ok(()),
            _ => Err(Error::ServerStart {
                name: self.name,
                reason: format!(
                    "it exited ({}); last output:\n{}",
                    status.map_or("killed".into(), |s| s.to_string()),
                    self.log_tail()
                ),
                log: self.log.clone(),
            }),
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, `KILL`) with the system's `kill`.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let pid = self.pid().ok_or_else(|| Error::ServerStart {
            name: self.name,
            reason: "not running".into(),
            log: self.log.clone(),
        })?;
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .map_err(|e| Error::io("running kill", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::io(
                format!("kill -{sig} {pid}"),
                std::io::Error::other(status.to_string()),
            ))
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// Polls `ready` until it returns true or `timeout` passes. The short pause between polls only
/// spaces the checks; the condition itself is what is awaited.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Finds `name`: `$FJORD_<NAME>`, `~/.cache/fjord-ci/tools/bin`, `~/.cargo/bin`, `PATH`, `/usr/sbin`.
pub fn find_binary(name: &'static str, install: &'static str) -> Result<PathBuf> {
    let var = format!("FJORD_{}", name.to_ascii_uppercase());
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var(&var) {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(
            Path::new(&home)
                .join(".cache/fjord-ci/tools/bin")
                .join(name),
        );
        candidates.push(Path::new(&home).join(".cargo/bin").join(name));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    candidates.push(Path::new("/usr/sbin").join(name));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(Error::MissingBinary {
            name,
            looked: format!("${var}, ~/.cache/fjord-ci/tools/bin, ~/.cargo/bin, PATH, /usr/sbin"),
            install,
        })
}
