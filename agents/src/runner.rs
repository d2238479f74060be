//! The one way agents run external commands (zpool, zfs, tgtadm): argv logged, a timeout that
//! kills the child, stdout/stderr captured, and a non-zero exit turned into an error carrying
//! the command's own words.

use std::time::{Duration, Instant};

use tokio::process::Command;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{argv}` could not start: {source}")]
    Spawn {
        argv: String,
        source: std::io::Error,
    },
    #[error("`{argv}` did not finish within {millis} ms and was killed")]
    Timeout { argv: String, millis: u128 },
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed {
        argv: String,
        status: String,
        stderr: String,
        stdout: String,
    },
}

/// A finished command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs commands with a default timeout.
#[derive(Clone, Debug)]
pub struct Runner {
    pub timeout: Duration,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            timeout: Duration::from_secs(60),
        }
    }
}

/// The command line as logged and put in errors: the value after `--password` (tgtadm's CHAP
/// account) is never shown.
pub fn shown_argv(program: &str, args: &[&str]) -> String {
    let mut shown = vec![program];
    for (i, a) in args.iter().enumerate() {
        let secret = i > 0 && args[i - 1] == "--password";
        shown.push(if secret { "<redacted>" } else { a });
    }
    shown.join(" ")
}

impl Runner {
    /// Runs `program args…`; Err unless it exits 0 within the timeout.
    pub async fn run(&self, program: &str, args: &[&str]) -> Result<Output, RunError> {
        let argv = shown_argv(program, args);
        let started = Instant::now();
        tracing::debug!(%argv, "running");
        let child = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(self.timeout, child).await {
            Ok(Ok(out)) => out,
            Ok(Err(source)) => return Err(RunError::Spawn { argv, source }),
            Err(_) => {
                tracing::warn!(%argv, "timed out; killed");
                return Err(RunError::Timeout {
                    argv,
                    millis: self.timeout.as_millis(),
                });
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        tracing::debug!(%argv, status = %out.status, ms = started.elapsed().as_millis(), "finished");
        if !out.status.success() {
            return Err(RunError::Failed {
                argv,
                status: out.status.to_string(),
                stderr: stderr.trim().to_string(),
                stdout,
            });
        }
        Ok(Output { stdout, stderr })
    }
}
