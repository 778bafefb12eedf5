//! Real processes in tests: whether one still runs, and waiting until it
//! does not. For tests of code that must kill what a command started
//! (`rollgate_deploy::run_shell`, `rollgate_drift::CommandSource`).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether `pid` runs, from `/proc/PID/stat` (Linux): a zombie, killed and
/// waiting to be reaped by a parent that has not yet, does not; a missing
/// process does not.
///
/// ```
/// assert!(rollgate_test::process::runs(std::process::id()));
/// assert!(!rollgate_test::process::runs(u32::MAX));
/// ```
pub fn runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
    })
}

/// Polls up to 5 s for `pid` to stop running; whether it did. A survivor
/// is killed (SIGTERM) before this returns `false`, so that a failing test
/// leaves nothing behind.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut child = std::process::Command::new("true").spawn().unwrap();
/// child.wait().unwrap();
/// assert!(rollgate_test::process::gone(child.id()).await);
/// # }
/// ```
pub async fn gone(pid: u32) -> bool {
    for _ in 0..100 {
        if !runs(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    false
}

/// Asserts that the process whose pid `file` holds stops running within 5 s
/// (see [`gone`]); `after` says after what, for the message.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut child = std::process::Command::new("true").spawn().unwrap();
/// child.wait().unwrap();
/// let file = std::env::temp_dir().join(format!("assert-gone-{}", std::process::id()));
/// std::fs::write(&file, format!("{}\n", child.id())).unwrap();
/// rollgate_test::process::assert_gone(&file, "its end").await;
/// std::fs::remove_file(&file).unwrap();
/// # }
/// ```
pub async fn assert_gone(file: &Path, after: &str) {
    let pid = read_pid(file)
        .unwrap_or_else(|| panic!("no pid in {} (was the command run?)", file.display()));
    assert!(gone(pid).await, "process {pid} outlived {after}");
}

/// A shell command line that starts a background `sleep 1000` (its pid
/// written to `DIR/pid`, the output pipe held open), then sleeps itself:
/// what a command that must be killed with its children looks like. The
/// line, and the file to read the background process's pid from with
/// [`read_pid`].
///
/// ```
/// let dir = std::path::Path::new("/nonexistent");
/// let (line, file) = rollgate_test::process::grandchild_line(dir);
/// assert!(line.starts_with("sleep 1000 & echo $! > "));
/// assert_eq!(rollgate_test::process::read_pid(&file), None); // not run
/// ```
pub fn grandchild_line(dir: &Path) -> (String, PathBuf) {
    let file = dir.join("pid");
    let line = format!("sleep 1000 & echo $! > '{}'; sleep 1000", file.display());
    (line, file)
}

/// Drives `call` until `file` holds a pid (for up to 30 s), and returns the
/// pid, leaving `call` unfinished for the test to drop (cancel) when it
/// chooses. Panics when `call` finishes first or no pid comes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// let dir = std::env::temp_dir().join(format!("pid-while-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = dir.join("pid");
/// let write = file.clone();
/// let mut call = Box::pin(async move {
///     std::fs::write(&write, "42\n").unwrap();
///     tokio::time::sleep(Duration::from_secs(60)).await;
/// });
/// assert_eq!(rollgate_test::process::pid_while(&mut call, &file).await, 42);
/// std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
pub async fn pid_while<F>(call: &mut F, file: &Path) -> u32
where
    F: std::future::Future + Unpin,
    F::Output: std::fmt::Debug,
{
    let started = std::time::Instant::now();
    loop {
        tokio::select! {
            r = &mut *call => panic!("the call finished before {} was written: {r:?}", file.display()),
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                if let Some(pid) = read_pid(file) {
                    return pid;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no pid in {} after 30 s",
                    file.display()
                );
            }
        }
    }
}

/// The pid written in `file`, once it is there in full.
pub fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Blocking form of waiting for [`read_pid`]: the pid in `file` once it is
/// there, polled for up to 30 s; panics naming the file otherwise.
///
/// ```
/// let file = std::env::temp_dir().join(format!("wait-for-pid-{}", std::process::id()));
/// std::fs::write(&file, "42\n").unwrap();
/// assert_eq!(rollgate_test::process::wait_for_pid(&file), 42);
/// std::fs::remove_file(&file).unwrap();
/// ```
pub fn wait_for_pid(file: &Path) -> u32 {
    let started = std::time::Instant::now();
    loop {
        if let Some(pid) = read_pid(file) {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no pid in {} after 30 s",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Blocking form of [`gone`]: asserts that `pid` stops running within 5 s;
/// a survivor is killed (SIGTERM) first, and the panic says it outlived
/// `what`.
///
/// ```
/// let mut child = std::process::Command::new("true").spawn().unwrap();
/// child.wait().unwrap();
/// rollgate_test::process::assert_exits(child.id(), "its end");
/// ```
pub fn assert_exits(pid: u32, what: &str) {
    let started = std::time::Instant::now();
    while runs(pid) {
        if started.elapsed() > Duration::from_secs(5) {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            panic!("process {pid} outlived {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
