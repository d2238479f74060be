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
    /// A streamed command's data could not be moved (the peer went away, no progress).
    #[error("`{argv}`: {message}")]
    Stream { argv: String, message: String },
}

/// Which end of a streamed command the data flows through.
enum Flow<'a> {
    /// The command's stdout into this writer.
    Out(&'a mut (dyn tokio::io::AsyncWrite + Unpin + Send)),
    /// This reader into the command's stdin.
    In(&'a mut (dyn tokio::io::AsyncRead + Unpin + Send)),
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

    /// Runs `program args…` with its stdout copied into `sink` (a `zfs send`); Ok (the bytes
    /// moved) only when the copy finished and the command exited 0. No overall timeout: a
    /// stream takes as long as it takes; `idle` without a byte moving kills it.
    pub async fn stream_out(
        &self,
        program: &str,
        args: &[&str],
        sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        idle: Duration,
    ) -> Result<u64, RunError> {
        self.stream(program, args, Flow::Out(sink), idle).await
    }

    /// Runs `program args…` with `source` copied into its stdin (a `zfs recv`); Ok only when
    /// the source ended, the command read it all and exited 0.
    pub async fn stream_in(
        &self,
        program: &str,
        args: &[&str],
        source: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
        idle: Duration,
    ) -> Result<u64, RunError> {
        self.stream(program, args, Flow::In(source), idle).await
    }

    async fn stream(
        &self,
        program: &str,
        args: &[&str],
        flow: Flow<'_>,
        idle: Duration,
    ) -> Result<u64, RunError> {
        use std::process::Stdio;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let argv = shown_argv(program, args);
        let started = Instant::now();
        tracing::info!(%argv, "streaming");
        let (stdin, stdout) = match flow {
            Flow::Out(_) => (Stdio::null(), Stdio::piped()),
            Flow::In(_) => (Stdio::piped(), Stdio::null()),
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RunError::Spawn {
                argv: argv.clone(),
                source,
            })?;
        let mut stderr_pipe = child.stderr.take();
        let stderr_task = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(e) = stderr_pipe.as_mut() {
                let _ = e.read_to_string(&mut text).await;
            }
            text
        });
        let stream_err = |message: String| RunError::Stream {
            argv: argv.clone(),
            message,
        };
        let copied: Result<u64, RunError> = async {
            match flow {
                Flow::Out(sink) => {
                    let Some(mut out) = child.stdout.take() else {
                        return Err(stream_err("no stdout".into()));
                    };
                    let n = copy_idle(
                        &mut out,
                        sink,
                        idle,
                        "reading its output",
                        "the receiver",
                        "sending",
                    )
                    .await
                    .map_err(stream_err)?;
                    tokio::time::timeout(idle, sink.shutdown())
                        .await
                        .map_err(|_| stream_err("closing the connection timed out".into()))?
                        .map_err(|e| stream_err(format!("closing the connection: {e}")))?;
                    Ok(n)
                }
                Flow::In(source) => {
                    let Some(mut input) = child.stdin.take() else {
                        return Err(stream_err("no stdin".into()));
                    };
                    let n = copy_idle(
                        source,
                        &mut input,
                        idle,
                        "receiving",
                        "the command",
                        "writing its input",
                    )
                    .await
                    .map_err(stream_err)?;
                    // End of input: the command sees EOF.
                    drop(input);
                    Ok(n)
                }
            }
        }
        .await;
        let moved = match copied {
            Ok(n) => n,
            Err(e) => {
                let _ = child.kill().await;
                let _ = stderr_task.await;
                tracing::warn!(error = %e, "stream failed");
                return Err(e);
            }
        };
        let status = tokio::time::timeout(self.timeout, child.wait())
            .await
            .map_err(|_| RunError::Timeout {
                argv: argv.clone(),
                millis: self.timeout.as_millis(),
            })?
            .map_err(|e| stream_err(format!("waiting for it: {e}")))?;
        let stderr = stderr_task.await.unwrap_or_default();
        tracing::info!(%argv, %status, bytes = moved, ms = started.elapsed().as_millis(), "stream finished");
        if !status.success() {
            return Err(RunError::Failed {
                argv,
                status: status.to_string(),
                stderr: stderr.trim().to_string(),
                stdout: String::new(),
            });
        }
        Ok(moved)
    }
}

/// Copies `from` into `to` until `from` ends; `idle` without progress on either side fails.
/// The words name the sides in the error: what reading `from` is, who `to` is when it takes
/// nothing, what writing to it is.
async fn copy_idle(
    from: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
    to: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    idle: Duration,
    reading: &str,
    taker: &str,
    writing: &str,
) -> Result<u64, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 128 * 1024];
    let mut moved = 0u64;
    loop {
        let n = tokio::time::timeout(idle, from.read(&mut buf))
            .await
            .map_err(|_| format!("no data for {idle:?}"))?
            .map_err(|e| format!("{reading}: {e}"))?;
        if n == 0 {
            return Ok(moved);
        }
        tokio::time::timeout(idle, to.write_all(&buf[..n]))
            .await
            .map_err(|_| format!("{taker} took nothing for {idle:?}"))?
            .map_err(|e| format!("{writing}: {e}"))?;
        moved += n as u64;
    }
}
