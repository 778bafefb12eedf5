//! Shell command templates: `{placeholder}` substitution and running with a timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::Error;

/// A command line with `{name}` placeholders, run with `sh -c`.
///
/// Values spliced in are validated newtypes (targets, versions, digests), which
/// cannot hold whitespace or shell metacharacters.
///
/// ```
/// use rollgate_deploy::CommandTemplate;
/// let t = CommandTemplate::new("echo {version} > /srv/{target}/current")?;
/// let vars = [("version", "v2"), ("target", "web-1")].into_iter().collect();
/// assert_eq!(t.render(&vars)?, "echo v2 > /srv/web-1/current");
/// assert!(CommandTemplate::new("echo {nope").is_err());
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    source: String,
}

impl CommandTemplate {
    /// Parses a template; braces must balance and names must be non-empty.
    pub fn new(source: impl Into<String>) -> Result<Self, Error> {
        let source = source.into();
        if source.trim().is_empty() {
            return Err(Error::invalid("command", "command is empty"));
        }
        let mut rest = source.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(Error::invalid(
                    "command",
                    format!(
                        "{source:?}: '{{' at byte {} is never closed",
                        source.len() - rest.len() + open
                    ),
                ));
            };
            let name = &after[..close];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(Error::invalid(
                    "command",
                    format!("{source:?}: bad placeholder {{{name}}}"),
                ));
            }
            rest = &after[close + 1..];
        }
        Ok(Self { source })
    }

    /// The placeholders the template uses.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = self.source.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            out.push(&after[..close]);
            rest = &after[close + 1..];
        }
        out
    }

    /// Checks that every placeholder is one of `allowed`.
    pub fn check_placeholders(&self, allowed: &[&str]) -> Result<(), Error> {
        for p in self.placeholders() {
            if !allowed.contains(&p) {
                return Err(Error::invalid(
                    "command",
                    format!(
                        "{:?}: unknown placeholder {{{p}}} (known: {})",
                        self.source,
                        allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Substitutes every placeholder; a missing value is an error.
    pub fn render(&self, vars: &BTreeMap<&str, &str>) -> Result<String, Error> {
        let mut out = String::with_capacity(self.source.len() + 32);
        let mut rest = self.source.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').unwrap_or(after.len());
            let name = &after[..close];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    return Err(Error::invalid(
                        "command",
                        format!("{:?}: no value for {{{name}}} here", self.source),
                    ));
                }
            }
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// What a finished command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output (at most 64 KiB kept).
    pub stdout: String,
    /// Standard error (at most 64 KiB kept).
    pub stderr: String,
}

impl CommandOutput {
    /// The exit status for messages: the code, or `a signal`.
    pub fn status_text(&self) -> String {
        self.code.map_or("a signal".to_string(), |c| c.to_string())
    }

    /// A one-line summary of stderr (or stdout), for error messages.
    pub fn summary(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let line = text.trim().lines().last().unwrap_or("").trim();
        let mut s: String = line.chars().take(200).collect();
        if s.len() < line.len() {
            s.push('…');
        }
        s
    }
}

/// Where and how commands run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandEnv {
    /// Working directory (default: the process's).
    pub cwd: Option<PathBuf>,
}

const MAX_OUTPUT: u64 = 64 * 1024;

/// Runs `line` with `sh -c`, killing it (and failing) after `timeout`.
/// Called by a deployer inside an executor's deploy, the command sees the
/// lease in `ROLLGATE_ROLLOUT`, `ROLLGATE_OWNER` and `ROLLGATE_FENCE`
/// ([`driving`](crate::driving)).
///
/// On unix the command runs in a process group of its own. On a timeout,
/// and when the returned future is dropped before it finishes (a cancelled
/// call), the whole group is killed (SIGKILL): `sh` and whatever it started,
/// such as `cmd &`, the stages of a pipeline or a script's `curl`. A command
/// that finishes leaves alone the processes it started and detached from its
/// output (a deploy script may start a service with `svc >log 2>&1 &`).
/// Such processes still hear no Ctrl-C from the terminal: only the caller
/// does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use rollgate_deploy::{CommandEnv, run_shell};
/// let out = run_shell("echo ready", &CommandEnv::default(), Duration::from_secs(10)).await;
/// assert_eq!(out.unwrap().stdout, "ready\n");
/// // `sleep 30 &` is killed along with `sh` after the 100 ms.
/// let err = run_shell("sleep 30 & sleep 30", &CommandEnv::default(), Duration::from_millis(100))
///     .await
///     .unwrap_err();
/// assert!(err.contains("timed out after 100ms"), "{err}");
/// # }
/// ```
pub async fn run_shell(
    line: &str,
    env: &CommandEnv,
    timeout: Duration,
) -> Result<CommandOutput, String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own group, so that a timeout or a cancellation can kill everything
    // it started; `kill_on_drop` alone would reach only `sh`.
    #[cfg(unix)]
    cmd.process_group(0);
    if let Some(dir) = &env.cwd {
        cmd.current_dir(dir);
    }
    // Inside a deploy: the lease it is made under, so that a command can
    // hand the fencing token on to its target (and refuse stale ones).
    if let Some(d) = crate::driving() {
        cmd.env("ROLLGATE_ROLLOUT", d.rollout.to_string())
            .env("ROLLGATE_OWNER", &d.owner)
            .env("ROLLGATE_FENCE", d.fence.0.to_string());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `sh -c {line}`: {e}"))?;
    // Declared before the work below, so it is dropped (and kills) on every
    // way out but a finished command: a timeout, an error, a cancellation.
    let mut group = GroupKill::new(child.id());
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(MAX_OUTPUT).read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(MAX_OUTPUT).read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((Ok(status), out, err)) => {
            // `sh` is reaped and its output closed: what it left running
            // was started on purpose.
            group.disarm();
            Ok(CommandOutput {
                code: status.code(),
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
            })
        }
        Ok((Err(e), _, _)) => Err(format!("`{line}` failed to run: {e}")),
        Err(_) => Err(format!(
            "`{line}` timed out after {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// The process groups of the commands [`run_shell`] runs now.
static RUNNING: std::sync::Mutex<std::collections::BTreeSet<u32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn running() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<u32>> {
    RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kills (SIGKILL) every command [`run_shell`] runs now, with whatever each
/// started, and returns how many were running.
///
/// For a process about to exit without running destructors
/// (`std::process::exit`, as the CLI does on a second Ctrl-C): the commands
/// run in process groups of their own, which the terminal's Ctrl-C does not
/// reach, so they would outlive it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use rollgate_deploy::{CommandEnv, kill_running_commands, run_shell};
/// let call = tokio::spawn(async {
///     run_shell("sleep 30 & sleep 30", &CommandEnv::default(), Duration::from_secs(60)).await
/// });
/// while kill_running_commands() == 0 {
///     tokio::time::sleep(Duration::from_millis(10)).await;
/// }
/// let out = call.await.unwrap().unwrap();
/// assert_eq!(out.code, None, "killed by a signal");
/// # }
/// ```
pub fn kill_running_commands() -> usize {
    let groups = std::mem::take(&mut *running());
    for &pgid in &groups {
        kill_group(pgid);
    }
    groups.len()
}

fn kill_group(pgid: u32) {
    #[cfg(unix)]
    if let Some(pgid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // ESRCH: the group has already gone, nothing to do.
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = pgid;
}

/// Kills a command's process group (SIGKILL to `-pgid`) when dropped, unless
/// disarmed. The command must lead its group (`process_group(0)`), so the
/// group id is its pid; while the command is not reaped, that id cannot be
/// reused.
struct GroupKill(Option<u32>);

impl GroupKill {
    fn new(pid: Option<u32>) -> Self {
        if let Some(pid) = pid {
            running().insert(pid);
        }
        Self(pid)
    }

    fn disarm(&mut self) {
        if let Some(pid) = self.0.take() {
            running().remove(&pid);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            running().remove(&pgid);
            kill_group(pgid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_reports_missing_values() {
        let t = CommandTemplate::new("deploy {target} {digest}").unwrap();
        let vars = [("target", "a")].into_iter().collect();
        let e = t.render(&vars).unwrap_err().to_string();
        assert!(e.contains("{digest}"), "{e}");
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let t = CommandTemplate::new("x {tagret}").unwrap();
        let e = t.check_placeholders(&["target"]).unwrap_err().to_string();
        assert!(e.contains("unknown placeholder {tagret}"), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_command_times_out() {
        let err = run_shell(
            "sleep 30",
            &CommandEnv::default(),
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
        assert!(err.contains("timed out after 50ms"), "{err}");
    }

    #[cfg(target_os = "linux")]
    use rollgate_test::process::{assert_gone, gone, grandchild_line, pid_while, runs};

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_timeout_kills_what_the_command_started() {
        let dir = tempfile::tempdir().unwrap();
        let (line, file) = grandchild_line(dir.path());
        let started = std::time::Instant::now();
        // 5 s: time for the grandchild to write its pid on a loaded machine.
        let err = run_shell(&line, &CommandEnv::default(), Duration::from_secs(5))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(err.contains("timed out after 5s"), "{err}");
        assert!(took < Duration::from_secs(60), "returned after {took:?}");
        assert_gone(&file, "the timeout").await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_cancelled_call_kills_what_the_command_started() {
        let dir = tempfile::tempdir().unwrap();
        let (line, file) = grandchild_line(dir.path());
        let env = CommandEnv::default();
        let mut call = Box::pin(run_shell(&line, &env, Duration::from_secs(600)));
        let pid = pid_while(&mut call, &file).await;
        assert!(runs(pid), "the background process {pid} is not running yet");
        drop(call);
        assert!(
            gone(pid).await,
            "background process {pid} outlived the cancelled call"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_finished_command_leaves_what_it_detached() {
        let out = run_shell(
            "sleep 1000 >/dev/null 2>&1 & echo $!",
            &CommandEnv::default(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let pid: u32 = out.stdout.trim().parse().unwrap();
        // Still running a second later: a wrongly sent SIGKILL would have
        // taken effect by then.
        let mut still = true;
        for _ in 0..20 {
            still &= runs(pid);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        assert!(
            still,
            "a finished command's detached process {pid} was killed"
        );
    }

    #[tokio::test]
    async fn captures_exit_code_and_output() {
        let out = run_shell(
            "echo hi; echo oops >&2; exit 3",
            &CommandEnv::default(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.summary(), "oops");
    }
}
