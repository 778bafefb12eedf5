//! A local fleet on loopback, driven by rollgate's command deployer: each
//! target is one `dns-provisioner serve` process whose pid, version, log
//! and database live in a run directory as `NAME.pid`, `NAME.version`,
//! `NAME.log` and `NAME.db`.
//!
//! `deploy` stops the process recorded for a target, starts the new
//! version on the target's address, waits until its `/health` answers with
//! that version, and only then records the version (what the deployer's
//! `current` command prints: `cat DIR/NAME.version`).

use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal, kill_process, test_kill_process};

/// One HTTP GET with reqwest's blocking client: the status and body.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .build()
        .context("building the HTTP client")?;
    let resp = client
        .get(format!("http://{addr}{path}"))
        .send()
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .with_context(|| format!("reading the body of http://{addr}{path}"))?;
    Ok((status, body))
}

/// The version `addr` serves, when its `/health` answers.
pub fn health(addr: SocketAddr) -> Option<String> {
    match get(addr, "/health", Duration::from_millis(500)) {
        Ok((200, body)) => body.strip_prefix("ok ").map(|v| v.trim().to_owned()),
        _ => None,
    }
}

fn alive(pid: Pid) -> bool {
    if test_kill_process(pid).is_err() {
        return false;
    }
    // A zombie (exited, not yet reaped) still takes signals: not alive.
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(true)
}

fn read_pid(file: &Path) -> Option<Pid> {
    let raw: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    Pid::from_raw(raw)
}

/// Stops the process recorded in `pidfile` (SIGTERM, SIGKILL after 5 s)
/// and removes the file. A missing file or a process already gone is fine.
pub fn stop(pidfile: &Path) -> anyhow::Result<()> {
    if let Some(pid) = read_pid(pidfile)
        && alive(pid)
    {
        let _ = kill_process(pid, Signal::TERM);
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if alive(pid) {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
    match std::fs::remove_file(pidfile) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", pidfile.display()))
        }
        _ => Ok(()),
    }
}

/// Stops every process recorded in `dir` (and any `serve` whose database
/// is there); an error when one is still running afterwards.
pub fn stop_all(dir: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .collect();
    files.sort();
    for f in files {
        stop(&f)?;
    }
    // A deploy interrupted between starting a process and recording its
    // pid would leave that process behind: stop any `serve` whose
    // database lives in `dir`.
    for pid in serving_in(dir) {
        let file = dir.join(format!(".orphan-{}.pid", pid.as_raw_nonzero()));
        std::fs::write(&file, format!("{}\n", pid.as_raw_nonzero()))
            .with_context(|| format!("write {}", file.display()))?;
        stop(&file)?;
    }
    let left = serving_in(dir);
    if !left.is_empty() {
        let pids: Vec<String> = left
            .iter()
            .map(|p| p.as_raw_nonzero().to_string())
            .collect();
        bail!(
            "{} still runs provisioner processes: {}",
            dir.display(),
            pids.join(" ")
        );
    }
    Ok(())
}

/// The `dns-provisioner serve` processes whose `--db` is in `dir`.
pub fn serving_in(dir: &Path) -> Vec<Pid> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let serving = args.get(1).is_some_and(|a| *a == b"serve");
        let in_dir = args.windows(2).any(|w| {
            w[0] == b"--db"
                && Path::new(std::ffi::OsStr::from_bytes(w[1]))
                    .parent()
                    .and_then(|d| d.canonicalize().ok())
                    .is_some_and(|d| d == dir)
        });
        if serving && in_dir && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// What [`deploy`] starts.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    /// The `dns-provisioner` binary.
    pub binary: PathBuf,
    /// The run directory.
    pub dir: PathBuf,
    /// The target's name (`dns-1`).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The version to run.
    pub version: String,
}

/// Replaces the target's process with `spec.version` and waits (up to
/// 20 s) until it serves.
pub fn deploy(spec: &DeploySpec) -> anyhow::Result<()> {
    std::fs::create_dir_all(&spec.dir).with_context(|| format!("create {}", spec.dir.display()))?;
    // Absolute, so `serving_in` recognises the process from any directory.
    let dir = &spec
        .dir
        .canonicalize()
        .with_context(|| format!("resolve {}", spec.dir.display()))?;
    let base = dir.join(&spec.name);
    let pidfile = base.with_extension("pid");
    let versionfile = base.with_extension("version");
    stop(&pidfile)?;
    // Until the new process serves, the target runs nothing rollgate knows.
    let _ = std::fs::remove_file(&versionfile);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(base.with_extension("log"))
        .with_context(|| format!("open {}.log", base.display()))?;
    let mut child = Command::new(&spec.binary)
        .arg("serve")
        .arg("--addr")
        .arg(spec.addr.to_string())
        .arg("--version")
        .arg(&spec.version)
        .arg("--db")
        .arg(base.with_extension("db"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C at the terminal reaches the
        // demo, which stops the fleet through the pid files.
        .process_group(0)
        .spawn()
        .with_context(|| format!("start {}", spec.binary.display()))?;
    std::fs::write(&pidfile, format!("{}\n", child.id()))
        .with_context(|| format!("write {}", pidfile.display()))?;
    let start = Instant::now();
    loop {
        if health(spec.addr).as_deref() == Some(spec.version.as_str()) {
            std::fs::write(&versionfile, format!("{}\n", spec.version))
                .with_context(|| format!("write {}", versionfile.display()))?;
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!(
                "{}: {} exited with {st} (see {}.log)",
                spec.name,
                spec.version,
                base.display()
            );
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!(
                "{}: {} does not answer on {} after 20 s",
                spec.name,
                spec.version,
                spec.addr
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Picks `n` free loopback ports (bound then released: another process may
/// take one in between, which `deploy` then reports).
pub fn free_addrs(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    held.iter()
        .map(|l| l.local_addr().map_err(Into::into))
        .collect()
}
