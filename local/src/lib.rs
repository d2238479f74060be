//! The embedded local default: control-plane binaries (resolve, build, start, stop), the
//! cluster objects a local run needs, and shared test support. Used by `cstor up`, tests/ and
//! xtask; never by in-cluster code.

pub mod binaries;
pub mod cluster;
pub mod components;
pub mod controlplane;
pub mod node;
pub mod pki;
pub mod pods;
pub mod process;
pub mod stack;
pub mod testing;
pub mod up;

use std::path::{Path, PathBuf};

/// Errors of the local mode; each names what failed and where to look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    GoMissing(String),
    #[error("building the control plane failed: {0}")]
    Build(String),
    #[error("certificates: {0}")]
    Pki(String),
    #[error("kubernetes API: {0}")]
    Kube(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Tool(String),
    #[error("CRD generation: {0}")]
    Crd(String),
    #[error("{name} exited ({status}); log {log}:\n{log_tail}", log = log.display())]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error(
        "cstor up is already running (pid {pid}) with state in {state_dir}; its kubeconfig is {kubeconfig}. Stop it with Ctrl-C in its terminal or `kill -TERM {pid}`.",
        state_dir = state_dir.display(), kubeconfig = kubeconfig.display()
    )]
    AlreadyRunning {
        pid: String,
        state_dir: PathBuf,
        kubeconfig: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `content` to `path` readable by its owner only (0600), through a temporary file and
/// a rename, so neither a half-written file nor a moment of wider permissions is ever seen:
/// private keys and tokens.
pub fn write_private(path: &Path, content: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp-private");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(content).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The marker file in a run directory `cstor up` made: only a directory carrying it is ever
/// removed (a mistaken `--state-dir /` must never remove `/run`).
pub const RUN_DIR_MARKER: &str = ".cstor-run-dir";
