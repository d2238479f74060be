//! Child processes that never outlive us: every child joins one process group, and a tiny
//! watchdog (`sh`) reading a pipe from us kills that group and removes the run directory as soon
//! as the pipe closes, i.e. when we exit by any means (clean stop, panic, abort, SIGKILL).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::Error;

/// The watchdog script: wait for EOF on stdin, then TERM the group, KILL stragglers, clean up.
const WATCHDOG: &str = r#"read _unused
kill -TERM "-$PGID" 2>/dev/null
i=0
while [ $i -lt 50 ] && kill -0 "-$PGID" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
kill -KILL "-$PGID" 2>/dev/null
[ -n "$CLEAN_DIR" ] && rm -rf "$CLEAN_DIR"
exit 0"#;

/// A set of supervised children sharing one process group.
pub struct Supervisor {
    children: Vec<(String, Child)>,
    pgid: Option<Pid>,
    watchdog: Option<(Child, ChildStdin)>,
    logs: PathBuf,
    clean_dir: Option<PathBuf>,
}

impl Supervisor {
    /// Children log to `logs/<name>.log`; `clean_dir` is removed when the watchdog fires.
    pub fn new(logs: PathBuf, clean_dir: Option<PathBuf>) -> Result<Self, Error> {
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
        Ok(Self {
            children: Vec::new(),
            pgid: None,
            watchdog: None,
            logs,
            clean_dir,
        })
    }

    /// The log file of a child.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Spawns `cmd` as `name` in the supervised group.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<u32, Error> {
        use std::os::unix::process::CommandExt;
        let log_path = self.log_path(name);
        let log = File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let log2 = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        // The first child leads the group; the rest join it.
        cmd.process_group(self.pgid.map(|p| p.as_raw()).unwrap_or(0));
        let child = cmd.spawn().map_err(|e| Error::Spawn {
            what: format!("{cmd:?}"),
            source: e,
        })?;
        let pid = child.id();
        if self.pgid.is_none() {
            let pgid = Pid::from_raw(pid as i32);
            self.pgid = Some(pgid);
            self.start_watchdog(pgid)?;
        }
        tracing::debug!(name, pid, "started");
        self.children.push((name.to_string(), child));
        Ok(pid)
    }

    fn start_watchdog(&mut self, pgid: Pid) -> Result<(), Error> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .env("PGID", pgid.as_raw().to_string())
            .env(
                "CLEAN_DIR",
                self.clean_dir
                    .as_deref()
                    .map(Path::as_os_str)
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so a terminal's Ctrl-C reaches us, not the watchdog.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| Error::Spawn {
            what: "watchdog sh".into(),
            source: e,
        })?;
        let stdin = child.stdin.take().ok_or_else(|| Error::Spawn {
            what: "watchdog sh".into(),
            source: std::io::Error::other("no stdin pipe"),
        })?;
        self.watchdog = Some((child, stdin));
        Ok(())
    }

    /// The process group of the children (joined by processes spawned elsewhere, so the
    /// watchdog ends them too).
    pub fn pgid(&self) -> Option<i32> {
        self.pgid.map(|p| p.as_raw())
    }

    /// Names and process ids of the running children.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect()
    }

    /// Returns the name and exit status of a child that has exited, if any.
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((name.clone(), status));
            }
        }
        None
    }

    /// Stops children in reverse start order: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        while let Some((name, mut child)) = self.children.pop() {
            let pid = Pid::from_raw(child.id() as i32);
            if matches!(child.try_wait(), Ok(None)) {
                let _ = kill(pid, Signal::SIGTERM);
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if matches!(child.try_wait(), Ok(None)) {
                    tracing::warn!(name, "did not stop on SIGTERM; killing");
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
            tracing::debug!(name, "stopped");
        }
        if let Some(pgid) = self.pgid.take() {
            // Anything a child left in the group.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = watchdog.wait();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
