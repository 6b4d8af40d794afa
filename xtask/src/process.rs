// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Runs external commands with their output in a log file and one-line errors.
//!
//! Every command's stdout and stderr go to `cache/logs/<name>.log`, after a
//! header naming the command line. On failure the caller gets one readable
//! line (`<what> failed (exit N); log: <path>`) and the last lines of the log
//! are printed to stderr. Long commands can echo matching lines, print a
//! heartbeat, or be killed (with their whole process group) after a timeout.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How many lines of the log are printed to stderr when a command fails.
const TAIL_LINES: usize = 15;

/// How long a command may stay silent before a heartbeat line is printed.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// How often the exit status, the heartbeat and the timeout are polled.
const POLL: Duration = Duration::from_millis(100);

/// How long a process group gets between `SIGTERM` and `SIGKILL` on timeout.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// A command that exited unsuccessfully.
#[derive(Debug)]
pub struct Failed {
    /// What was being done, such as `apt-get install`.
    pub what: String,
    /// The exit code, or `None` if a signal killed the command.
    pub code: Option<i32>,
    /// The signal that killed the command, if any.
    pub signal: Option<i32>,
    /// A hint for the reader, such as `is the network up?`.
    pub hint: Option<String>,
    /// The log file holding the command's output.
    pub log: PathBuf,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "{} failed (exit {code})", self.what)?,
            (None, Some(sig)) => write!(f, "{} failed (killed by signal {sig})", self.what)?,
            (None, None) => write!(f, "{} failed", self.what)?,
        }
        match &self.hint {
            Some(hint) if hint.ends_with(['?', '.', '!']) => write!(f, ": {hint} ")?,
            Some(hint) => write!(f, ": {hint}; ")?,
            None => write!(f, "; ")?,
        }
        write!(f, "log: {}", self.log.display())
    }
}

impl std::error::Error for Failed {}

/// A command that was killed because it ran longer than its timeout.
#[derive(Debug)]
pub struct TimedOut {
    /// What was being done, such as `qemu`.
    pub what: String,
    /// The timeout that expired.
    pub timeout: Duration,
    /// The log file holding the command's output.
    pub log: PathBuf,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} timed out after {}s; log: {}",
            self.what,
            self.timeout.as_secs(),
            self.log.display()
        )
    }
}

impl std::error::Error for TimedOut {}

/// A filter choosing which output lines are echoed to the terminal.
type Filter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// A command to run with its output logged; built with [`Job::new`] and run with [`Job::run`].
pub struct Job {
    cmd: Command,
    line: String,
    what: String,
    log: PathBuf,
    hint: Option<String>,
    echo: Option<Filter>,
    heartbeat: bool,
    timeout: Option<Duration>,
}

impl Job {
    /// Prepares `cmd` (an `xshell::Cmd` or a `std::process::Command`), described as `what`, logging to `log`.
    pub fn new(cmd: impl Into<Command>, what: &str, log: &Path) -> Self {
        let cmd: Command = cmd.into();
        let line = command_line(&cmd);
        Self {
            cmd,
            line,
            what: what.to_owned(),
            log: log.to_owned(),
            hint: None,
            echo: None,
            heartbeat: false,
            timeout: None,
        }
    }

    /// Adds a hint to the failure message, such as `is the network up?`.
    pub fn hint(mut self, hint: &str) -> Self {
        self.hint = Some(hint.to_owned());
        self
    }

    /// Echoes the output lines for which `filter` returns true to stderr.
    pub fn echo(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.echo = Some(Box::new(filter));
        self
    }

    /// Prints `still building <what> (Ns)` whenever nothing was shown for 30 s.
    pub fn heartbeat(mut self) -> Self {
        self.heartbeat = true;
        self
    }

    /// Kills the command's process group after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs the command to completion; see [`Failed`] and [`TimedOut`] for the errors.
    pub fn run(mut self) -> Result<()> {
        if let Some(dir) = self.log.parent() {
            crate::paths::ensure_dir(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open log {}", self.log.display()))?;
        let start_offset = file.seek(SeekFrom::End(0)).unwrap_or(0);
        writeln!(file, "\n===== {} =====\n$ {}", timestamp(), self.line)
            .with_context(|| format!("cannot write log {}", self.log.display()))?;

        // Never prompt; put the command in its own process group so a timeout kills all of it.
        self.cmd.stdin(Stdio::null());
        if self.timeout.is_some() {
            self.cmd.process_group(0);
        }

        let echo = self.echo.take().map(Arc::new);
        let last_shown = Arc::new(Mutex::new(Instant::now()));
        let mut readers = Vec::new();
        let mut child: Child;
        if let Some(filter) = &echo {
            self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            child = self.spawn()?;
            let shared = Arc::new(Mutex::new(file));
            let outs: [Option<Box<dyn Read + Send>>; 2] = [
                child
                    .stdout
                    .take()
                    .map(|o| Box::new(o) as Box<dyn Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|e| Box::new(e) as Box<dyn Read + Send>),
            ];
            for out in outs.into_iter().flatten() {
                let (shared, filter, last_shown) =
                    (shared.clone(), filter.clone(), last_shown.clone());
                readers.push(thread::spawn(move || {
                    pump(out, &shared, &**filter, &last_shown);
                }));
            }
        } else {
            let err = file
                .try_clone()
                .with_context(|| format!("cannot reopen log {}", self.log.display()))?;
            self.cmd.stdout(file).stderr(err);
            child = self.spawn()?;
        }

        let started = Instant::now();
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .with_context(|| format!("cannot wait for {}", self.what))?
            {
                break status;
            }
            if let Some(timeout) = self.timeout {
                if started.elapsed() >= timeout {
                    kill_group(&mut child);
                    join(readers);
                    return Err(TimedOut {
                        what: self.what,
                        timeout,
                        log: self.log,
                    }
                    .into());
                }
            }
            if self.heartbeat {
                let mut last = last_shown.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= HEARTBEAT {
                    eprintln!(
                        "still building {} ({}s)",
                        self.what,
                        started.elapsed().as_secs()
                    );
                    *last = Instant::now();
                }
            }
            thread::sleep(POLL);
        };
        join(readers);
        self.check(status, start_offset)
    }

    fn spawn(&mut self) -> Result<Child> {
        self.cmd.spawn().with_context(|| {
            format!(
                "{} failed to start ({}); log: {}",
                self.what,
                program(&self.cmd),
                self.log.display()
            )
        })
    }

    fn check(self, status: ExitStatus, start_offset: u64) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        print_tail(&self.log, start_offset);
        Err(Failed {
            what: self.what,
            code: status.code(),
            signal: status.signal(),
            hint: self.hint,
            log: self.log,
        }
        .into())
    }
}

/// Applies `patches` in order to the source tree `tree` (`patch -p1`), logging to `log`.
pub fn apply_patches(tree: &Path, patches: &[PathBuf], log: &Path) -> Result<()> {
    for patch in patches {
        let mut cmd = Command::new("patch");
        cmd.current_dir(tree)
            .args(["-p1", "--batch", "--forward", "-i"])
            .arg(patch);
        Job::new(cmd, &format!("applying {}", patch.display()), log).run()?;
    }
    Ok(())
}

/// Runs `cmd` with its output in `log`; on failure returns `<what> failed (exit N); log: <path>`.
pub fn run_logged(cmd: impl Into<Command>, what: &str, log: &Path) -> Result<()> {
    Job::new(cmd, what, log).run()
}

/// Like [`run_logged`], but echoes lines matching `filter` and prints a heartbeat every 30 s of silence.
pub fn run_progress(
    cmd: impl Into<Command>,
    what: &str,
    log: &Path,
    filter: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Result<()> {
    Job::new(cmd, what, log).echo(filter).heartbeat().run()
}

/// Runs `cmd` with its output in `log`, killing its process group after `timeout`.
///
/// The timeout error is a [`TimedOut`]: `<program> timed out after Ns; log: <path>`.
pub fn run_with_timeout(cmd: impl Into<Command>, timeout: Duration, log: &Path) -> Result<()> {
    let cmd: Command = cmd.into();
    let what = program(&cmd);
    Job::new(cmd, &what, log).timeout(timeout).run()
}

/// Returns true if `err` (or an error in its chain) is a [`TimedOut`].
pub fn is_timeout(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<TimedOut>())
}

/// Copies lines from `out` to the log, echoing those `filter` accepts.
fn pump(out: impl Read, log: &Mutex<File>, filter: &dyn Fn(&str) -> bool, shown: &Mutex<Instant>) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        {
            let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
            // A full disk must not kill the build; the exit status still counts.
            let _ = file.write_all(&buf);
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if filter(line) {
            eprintln!("{line}");
            *shown.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }
}

fn join(readers: Vec<thread::JoinHandle<()>>) {
    for reader in readers {
        // A panicking reader only loses log lines; the exit status is what matters.
        let _ = reader.join();
    }
}

/// Sends `SIGTERM` to the child's process group, then `SIGKILL` if it is still alive.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let signal = |sig: &str| {
        let _ = Command::new("kill")
            .args([sig, "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    signal("-TERM");
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            // The leader is gone; make sure no member of its group lingers.
            signal("-KILL");
            return;
        }
        thread::sleep(POLL);
    }
    signal("-KILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// Prints the last lines written to `log` since `start_offset` to stderr.
fn print_tail(log: &Path, start_offset: u64) {
    let Ok(mut file) = File::open(log) else {
        return;
    };
    if file.seek(SeekFrom::Start(start_offset)).is_err() {
        return;
    }
    let mut text = Vec::new();
    if file.read_to_end(&mut text).is_err() {
        return;
    }
    let text = String::from_utf8_lossy(&text);
    let tail = last_lines(&text, TAIL_LINES);
    if tail.is_empty() {
        return;
    }
    eprintln!("----- last lines of {} -----", log.display());
    for line in tail {
        eprintln!("{line}");
    }
    eprintln!("-----");
}

/// Returns the last `n` non-empty lines of `text`.
fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Returns the program name of `cmd` without its directory.
fn program(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program());
    prog.file_name()
        .unwrap_or(prog.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// Renders `cmd` as a shell-like line for the log header.
fn command_line(cmd: &Command) -> String {
    let mut line = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        line.push_str(&format!("(cd {}) ", dir.display()));
    }
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ));
        }
    }
    line.push_str(&quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(&arg.to_string_lossy()));
    }
    line
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Returns seconds since the Unix epoch, for log headers.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix time {secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_log(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vagx-process-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("test.log")
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn success_logs_header_and_output() {
        let log = temp_log("ok");
        run_logged(sh("echo hello; echo oops >&2"), "greeting", &log).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("$ sh -c 'echo hello; echo oops >&2'"),
            "{text}"
        );
        assert!(text.contains("hello\n"));
        assert!(text.contains("oops\n"));
    }

    #[test]
    fn failure_is_one_line_with_exit_code_and_log() {
        let log = temp_log("fail");
        let err = run_logged(sh("echo broken; exit 3"), "thing", &log).unwrap_err();
        let msg = format!("{err:#}");
        assert_eq!(
            msg,
            format!("thing failed (exit 3); log: {}", log.display())
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn hint_goes_before_the_log() {
        let log = temp_log("hint");
        let err = Job::new(sh("exit 100"), "apt-get install", &log)
            .hint("is the network up?")
            .run()
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "apt-get install failed (exit 100): is the network up? log: {}",
                log.display()
            )
        );
    }

    #[test]
    fn progress_echoes_and_logs_everything() {
        let log = temp_log("progress");
        run_progress(sh("echo '  CC foo.o'; echo noise"), "kernel", &log, |l| {
            l.starts_with("  CC")
        })
        .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("  CC foo.o\n") && text.contains("noise\n"));
    }

    #[test]
    fn timeout_kills_the_group() {
        let log = temp_log("timeout");
        let started = Instant::now();
        let err = run_with_timeout(sh("sleep 30 & sleep 30"), Duration::from_millis(300), &log)
            .unwrap_err();
        assert!(is_timeout(&err));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            format!("{err:#}"),
            format!("sh timed out after 0s; log: {}", log.display())
        );
    }

    #[test]
    fn missing_program_is_a_readable_error() {
        let log = temp_log("missing");
        let err = run_logged(Command::new("/nonexistent/vagx-tool"), "tool", &log).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("tool failed to start (vagx-tool)"), "{msg}");
    }

    #[test]
    fn tail_skips_blank_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), vec!["b", "c"]);
    }
}
