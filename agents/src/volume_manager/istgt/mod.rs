//! cStor's own iSCSI target, istgt, driven over its unit-control socket as the Go sidecar does
//! (docs/volumes.md "istgt"): one connection per command, a deadline on every call, replies
//! read across split writes. [`conf`] renders istgt.conf from a CStorVolume; [`reply`] reads
//! the answers; [`register`] answers istgt's replica registrations; [`decide`] and [`serve`]
//! are the volume-manager's loop beside istgt. The local stack serves volumes with tgt; this
//! is the cluster's target.

pub mod conf;
pub mod decide;
pub mod register;
pub mod reply;
pub mod serve;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

pub use reply::{Reply, ReplyError, VolumeReport};

/// Where istgt listens (compiled into istgt).
pub const CONTROL_SOCKET: &str = "/var/run/istgt_ctl_sock";
/// The wait istgt is given to quiesce IO for a snapshot, and the whole snapshot.
pub const IO_WAIT_SECS: u32 = 10;
pub const TOTAL_WAIT_SECS: u32 = 60;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum IstgtError {
    #[error("istgt control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("istgt did not finish answering {command} within {secs} s (read so far: {partial:?})")]
    Deadline {
        command: String,
        secs: u64,
        partial: Vec<String>,
    },
    #[error("istgt closed the connection before answering {command} (read: {partial:?})")]
    Closed {
        command: String,
        partial: Vec<String>,
    },
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// A client of one istgt's control socket.
#[derive(Clone, Debug)]
pub struct Istgt {
    pub socket: PathBuf,
    /// Deadline of one command, connect to last byte.
    pub deadline: Duration,
}

impl Istgt {
    pub fn new(socket: impl AsRef<Path>, deadline: Duration) -> Self {
        Istgt {
            socket: socket.as_ref().to_path_buf(),
            deadline,
        }
    }

    /// Sends `request` (no line end) on a fresh connection and reads the whole reply.
    pub async fn command(&self, request: &str) -> Result<Reply, IstgtError> {
        let mut lines = Vec::new();
        let work = self.exchange(request, &mut lines);
        match tokio::time::timeout(self.deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(IstgtError::Deadline {
                command: request.to_string(),
                secs: self.deadline.as_secs(),
                partial: lines,
            }),
        }
    }

    async fn exchange(&self, request: &str, lines: &mut Vec<String>) -> Result<Reply, IstgtError> {
        let io = |source| IstgtError::Io {
            path: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).await.map_err(io)?;
        stream
            .write_all(format!("{request}\r\n").as_bytes())
            .await
            .map_err(io)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(IstgtError::Closed {
                    command: request.to_string(),
                    partial: lines.clone(),
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            lines.extend(reply::take_lines(&mut buf));
            if let Some(done) = reply::parse(request, lines) {
                return Ok(done?);
            }
        }
    }

    /// `STATUS`: the LUs and whether each is ready (`REAL`).
    pub async fn status(&self) -> Result<Vec<(String, bool)>, IstgtError> {
        Ok(reply::parse_status(&self.command("STATUS").await?.data))
    }

    /// `REPLICA`: every volume istgt serves, with its replicas.
    pub async fn replicas(&self) -> Result<Vec<VolumeReport>, IstgtError> {
        Ok(reply::parse_replicas(&self.command("REPLICA").await?.data)?)
    }

    /// `REFRESH` (re-read istgt.conf), then `REPLICA` to confirm `volume` is served: istgt
    /// answers OK to a REFRESH whose LU section it rejected.
    pub async fn refresh(&self, volume: &str) -> Result<VolumeReport, IstgtError> {
        self.command("REFRESH").await?;
        let volumes = self.replicas().await?;
        volumes
            .into_iter()
            .find(|v| v.name == volume)
            .ok_or_else(|| {
                ReplyError::Malformed {
                    command: "REFRESH".into(),
                    what: format!("istgt serves no volume {volume} after re-reading its conf"),
                }
                .into()
            })
    }

    /// `RESIZE <volume> <size>` (`size` in istgt's 1024-based form, e.g. `2Gi`).
    pub async fn resize(&self, volume: &str, size: &str) -> Result<(), IstgtError> {
        self.command(&format!(
            "RESIZE {volume} {size} {IO_WAIT_SECS} {TOTAL_WAIT_SECS}"
        ))
        .await?;
        Ok(())
    }

    /// `DRF <volume> <n> [keep...]`: the desired replication factor; on a scale-down, the ids
    /// of the `n` replicas to keep.
    pub async fn desired_replication(
        &self,
        volume: &str,
        n: u32,
        keep: &[String],
    ) -> Result<(), IstgtError> {
        let mut request = format!("DRF {volume} {n}");
        for id in keep {
            request.push(' ');
            request.push_str(id);
        }
        self.command(&request).await?;
        Ok(())
    }

    /// `SNAPCREATE <volume> <snapshot>`: crash-consistent on every healthy replica.
    pub async fn snapshot_create(&self, volume: &str, snapshot: &str) -> Result<(), IstgtError> {
        self.command(&format!(
            "SNAPCREATE {volume} {snapshot} {IO_WAIT_SECS} {TOTAL_WAIT_SECS}"
        ))
        .await?;
        Ok(())
    }

    /// `SNAPDESTROY <volume> <snapshot>` (istgt always answers OK for a known volume).
    pub async fn snapshot_destroy(&self, volume: &str, snapshot: &str) -> Result<(), IstgtError> {
        self.command(&format!(
            "SNAPDESTROY {volume} {snapshot} {IO_WAIT_SECS} {TOTAL_WAIT_SECS}"
        ))
        .await?;
        Ok(())
    }
}
