//! Shared by the CLI's integration tests: scratch directories, the real
//! `rollgate` binary run in them, and for canary gates a fleet of the test
//! HTTP service (svc.py, one process per target on loopback ports) with an
//! optional throwaway Prometheus (scripts/prometheus.sh) scraping it.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const V1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const V2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// A scratch directory, deleted when dropped.
pub struct Dir {
    _tmp: tempfile::TempDir,
    pub path: PathBuf,
}

impl Dir {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().to_path_buf();
        Dir { _tmp: tmp, path }
    }

    /// With `n` file targets `srv/web-N/current`, each running v1.
    pub fn with_web_targets(n: usize) -> Self {
        let d = Self::new();
        for i in 1..=n {
            std::fs::create_dir_all(d.path.join(format!("srv/web-{i}"))).expect("mkdir");
            std::fs::write(d.path.join(format!("srv/web-{i}/current")), "v1\n").expect("write");
        }
        d
    }
}

impl AsRef<Path> for Dir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The `rollgate` binary, run in `dir` with its state file there.
pub fn rollgate_cmd(dir: impl AsRef<Path>, args: &[&str]) -> Command {
    let dir = dir.as_ref();
    let mut c = Command::new(env!("CARGO_BIN_EXE_rollgate"));
    c.args(args)
        .current_dir(dir)
        .env("ROLLGATE_STATE", dir.join("state.db"));
    c
}

/// Runs `rollgate ARGS` in `dir` to its end.
pub fn rollgate(dir: impl AsRef<Path>, args: &[&str]) -> Output {
    rollgate_cmd(dir, args).output().expect("rollgate runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// tests/support/svc.py, the test HTTP service.
pub fn svc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/svc.py")
}

/// The analysis the canary-gate tests judge with (`analysis.toml` of a fleet).
pub const ANALYSIS: &str = r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
critical = true
min_samples = 10
relative = { max_increase_pct = 300.0 }
statistical = { min_effect_pct = 300.0 }
distribution = { max_shifted_fraction = 0.5 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
critical = true
threshold = { ratio_max = 0.05 }
"#;

/// `[gate.metrics]` for svc.py's exposition, matching [`ANALYSIS`].
pub const GATE_METRICS: &str = r#"
[gate.metrics.latency_ms]
histogram = "http_request_duration_seconds"
scale = 1000
labels = { route = "/records" }

[gate.metrics.errors]
events = { counter = "http_requests_total", labels = { code = "500" } }
trials = { counter = "http_requests_total" }
"#;

/// A scratch directory with `n` service processes `dns-1..n` running v1
/// and `analysis.toml`; the processes are stopped when it is dropped.
pub struct Fleet {
    pub dir: Dir,
    pub path: PathBuf,
    pub addrs: Vec<String>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .arg(svc())
            .args(["stop", "--dir"])
            .arg(self.path.join("run"))
            .status();
    }
}

impl AsRef<Path> for Fleet {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn fleet(n: usize) -> Fleet {
    let dir = Dir::new();
    let path = dir.path.clone();
    std::fs::create_dir_all(path.join("run")).expect("run dir");
    let addrs: Vec<String> = (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let f = Fleet { dir, path, addrs };
    for i in 1..=n {
        f.deploy(i, "v1");
    }
    std::fs::write(f.path.join("analysis.toml"), ANALYSIS).expect("analysis");
    f
}

impl Fleet {
    /// Starts `version` as `dns-{i}` (stopping what ran there).
    pub fn deploy(&self, i: usize, version: &str) {
        let st = Command::new("python3")
            .arg(svc())
            .args(["deploy", "--dir"])
            .arg(self.path.join("run"))
            .args([
                "--name",
                &format!("dns-{i}"),
                "--addr",
                &self.addrs[i - 1],
                "--version",
                version,
            ])
            .status()
            .expect("python3 runs the test service");
        assert!(st.success(), "deploying {version} on dns-{i}");
    }

    /// Kills `dns-{i}` with SIGKILL (no clean exit).
    pub fn kill_9(&self, i: usize) {
        // `PID START` (see svc.py's `stop_pid`).
        let pid = std::fs::read_to_string(self.path.join(format!("run/dns-{i}.pid")))
            .expect("pid")
            .split_whitespace()
            .next()
            .expect("a pid")
            .to_string();
        assert!(
            Command::new("kill")
                .args(["-9", &pid])
                .status()
                .expect("kill")
                .success()
        );
    }

    /// What each target runs, as `current` reports it.
    pub fn versions(&self) -> Vec<String> {
        (1..=self.addrs.len())
            .map(|i| {
                std::fs::read_to_string(self.path.join(format!("run/dns-{i}.version")))
                    .expect("version file")
                    .trim()
                    .to_string()
            })
            .collect()
    }

    /// `targets = [...]` with each target's `addr`.
    pub fn targets(&self) -> String {
        let t = self
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{{ name = \"dns-{}\", addr = \"{a}\" }}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        format!("targets = [{t}]")
    }
}

/// The digest of a test service version.
pub fn digest(version: &str) -> String {
    let c = match version {
        "v2" => '2',
        "v2-slow" => '3',
        "v2-errors" => '4',
        _ => '5',
    };
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A real Prometheus (Debian's, via scripts/prometheus.sh) scraping a
/// fleet every second; stopped when dropped.
pub struct Prometheus {
    dir: tempfile::TempDir,
    pub url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(rollgate_test::script("prometheus.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

impl Prometheus {
    /// Starts it on `f`'s addresses and waits for two scrapes of each.
    pub fn start(f: &Fleet) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("bash")
            .arg(rollgate_test::script("prometheus.sh"))
            .arg("start")
            .arg(dir.path())
            .args(&f.addrs)
            .output()
            .expect("run scripts/prometheus.sh");
        assert!(out.status.success(), "{}", explain(&out));
        let url = std::fs::read_to_string(dir.path().join("prometheus.url"))
            .expect("prometheus.url")
            .trim()
            .to_string();
        let p = Prometheus { dir, url };
        p.wait_for_scrapes(f.addrs.len(), 3);
        p
    }

    /// Waits (up to 60 s) until each of `targets` targets has been scraped
    /// successfully `scrapes` times: a loaded machine starts Prometheus
    /// late, so no fixed sleep is enough.
    pub fn wait_for_scrapes(&self, targets: usize, scrapes: usize) {
        let script = r#"
import json, sys, time, urllib.parse, urllib.request
url, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
q = urllib.parse.urlencode({"query": "sum_over_time(up[1m])"})
end = time.time() + 60
while time.time() < end:
    try:
        r = json.load(urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5))
        got = [float(s["value"][1]) for s in r["data"]["result"]]
        if len(got) >= n and all(g >= k for g in got):
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(f"prometheus at {url} did not scrape {n} targets {k} times in 60 s")
"#;
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                &self.url,
                &targets.to_string(),
                &scrapes.to_string(),
            ])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{}", explain(&out));
    }

    /// The gate's `source` key and `[gate.prometheus]` table.
    pub fn source(&self) -> String {
        format!(
            "source = \"prometheus\"\n\n[gate.prometheus]\nurl = \"{}\"\ninstance_label = \"instance\"\n",
            self.url
        )
    }
}

/// The gate's `source` key and `[gate.scrape]` table, scraping every 500 ms.
pub const SCRAPE: &str =
    "source = \"scrape\"\n\n[gate.scrape]\nurl = \"http://{addr}/metrics\"\ninterval = \"500ms\"\n";

/// The API token `serve` tests plant: `scripts/test.sh` gives a fresh one
/// per run (`ROLLGATE_TEST_API_TOKEN`) and fails when it shows up in any
/// output.
pub fn api_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        std::env::var("ROLLGATE_TEST_API_TOKEN")
            .ok()
            .filter(|t| t.len() >= 16)
            .unwrap_or_else(|| "planted-token-7f3a9c1e5b2d4680".into())
    })
}

/// Whether the PostgreSQL tests can run (`scripts/postgres.sh run` sets
/// `ROLLGATE_TEST_POSTGRES_URL`). Without it they skip after a loud
/// message, except with `ROLLGATE_REQUIRE_POSTGRES` (CI), where they fail.
pub fn postgres_available(test: &str) -> bool {
    if std::env::var("ROLLGATE_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        return true;
    }
    assert!(
        std::env::var_os("ROLLGATE_REQUIRE_POSTGRES").is_none(),
        "ROLLGATE_REQUIRE_POSTGRES is set but ROLLGATE_TEST_POSTGRES_URL is not: \
         run the tests through `bash scripts/postgres.sh run ...`"
    );
    eprintln!(
        "\n*** SKIPPED: no PostgreSQL. Run `bash scripts/postgres.sh run cargo nextest run \
         -p rollgate-cli --test {test}` to run it for real. ***\n"
    );
    false
}

/// The test PostgreSQL server's URL, or `None` after the loud message of
/// [`postgres_available`] (which fails the test under
/// `ROLLGATE_REQUIRE_POSTGRES`).
pub fn postgres_url(test: &str) -> Option<String> {
    postgres_available(test).then(|| {
        std::env::var("ROLLGATE_TEST_POSTGRES_URL").expect("checked by postgres_available")
    })
}

/// A fresh, empty database `PREFIX_PID` on the test server; its URL.
pub fn fresh_database(server: &str, prefix: &str) -> String {
    create_database(server, &format!("{prefix}_{}", std::process::id()))
}

/// Creates the empty database `name` on the PostgreSQL server at `server`
/// (a URL); its URL.
pub fn create_database(server: &str, name: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    });
    let (base, _) = server.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// The address after `listening on http://` in a process's log, once that
/// line is complete: a log read while the line is being written would
/// otherwise give a cut address (`127.0.0.`).
pub fn listen_addr(log: &str) -> Option<String> {
    let rest = log.split("listening on http://").nth(1)?;
    let line = &rest[..rest.find('\n')?];
    line.split_whitespace().next().map(str::to_owned)
}

/// A `rollgate serve` process started by a test: its output in files
/// (`NAME.out`, `NAME.err` in its directory), its address from its
/// `listening on` line, stopped with SIGTERM or killed when dropped
/// (continued first, in case a test froze it with SIGSTOP).
pub struct Server {
    child: std::process::Child,
    out: PathBuf,
    err: PathBuf,
    addr: Option<String>,
}

impl Server {
    /// Starts `rollgate serve ARGS` in `dir` (`--listen 127.0.0.1:0` unless
    /// ARGS has `--listen`), with `env` set, and waits (up to 60 s) until it
    /// listens. `ROLLGATE_STATE`, `ROLLGATE_TOKEN`, `RUST_LOG` and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` are taken from `env` only, never from
    /// the test's environment.
    pub fn start(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut s = Self::spawn(dir, name, args, env);
        s.wait_listening(std::time::Duration::from_secs(60));
        s
    }

    /// [`start`](Self::start) without waiting: a server that may fail to
    /// start (its store unreachable), to be told apart by [`try_wait`](Self::try_wait).
    pub fn spawn(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollgate"));
        cmd.arg("serve").args(args);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.current_dir(dir)
            .env_remove("ROLLGATE_STATE")
            .env_remove("ROLLGATE_TOKEN")
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("serve's stdout file"))
            .stderr(std::fs::File::create(&err).expect("serve's stderr file"));
        let child = cmd.spawn().expect("rollgate serve starts");
        Server {
            child,
            out,
            err,
            addr: None,
        }
    }

    /// Waits up to `within` for the `listening on` line; its address.
    /// Panics with the log when the server does not listen in time or exits.
    pub fn wait_listening(&mut self, within: std::time::Duration) -> &str {
        let start = std::time::Instant::now();
        while self.addr.is_none() {
            let text = self.log();
            self.addr = listen_addr(&text);
            if self.addr.is_some() {
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited ({status}) before listening: {text}");
            }
            assert!(start.elapsed() < within, "serve did not start: {text}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.addr()
    }

    /// Its API's `host:port` (from the `listening on` line).
    pub fn addr(&self) -> &str {
        self.addr
            .as_deref()
            .expect("a server started with Server::start (or wait_listening)")
    }

    /// Its API's `host:port`, read again from its log: `None` until it
    /// listens.
    pub fn listening(&self) -> Option<String> {
        listen_addr(&self.log())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its standard error so far (the log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Everything it printed so far: standard output, then standard error.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default() + &self.log()
    }

    /// Its exit status, if it has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `-NAME` (`STOP`, `CONT`, `TERM`, ...) with kill(1); whether
    /// kill succeeded (it fails for a process already gone).
    pub fn signal(&self, name: &str) -> bool {
        signal(name, self.pid())
    }

    /// SIGTERM (after SIGCONT) and its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.stop_within(std::time::Duration::from_secs(60))
            .expect("serve stops within 60 s of SIGTERM")
    }

    /// SIGTERM (after SIGCONT), then its exit status once it ends within
    /// `within`; `None` when it did not (it is killed then).
    pub fn stop_within(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        if let Some(status) = self.try_wait() {
            return Some(status);
        }
        self.signal("CONT");
        self.signal("TERM");
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if start.elapsed() > within {
                self.kill();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL, and waits for it. Nothing is sent to a process already
    /// reaped (its pid may be another's by now).
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            self.signal("CONT");
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `kill -NAME PID`; whether it succeeded.
/// Sends SIG`name` to `child`, then waits up to `within` for it to exit:
/// its exit code, or (after killing it) an error saying it did not exit.
pub fn signal_and_wait(
    child: &mut std::process::Child,
    name: &str,
    within: std::time::Duration,
) -> Result<Option<i32>, String> {
    assert!(signal(name, child.id()), "kill -{name} {}", child.id());
    let asked = std::time::Instant::now();
    while asked.elapsed() < within {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Ok(status.code());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "pid {} still running {within:?} after SIG{name}",
        child.id()
    ))
}

pub fn signal(name: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
