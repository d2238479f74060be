//! The volume-manager: the iSCSI target of one volume (docs/volumes.md, "Two data planes").
//! In a cluster it drives cStor's istgt ([`istgt`]). Locally, a FUSE file ([`fuse`]) whose writes go to every
//! healthy replica's `lun` file with quorum acknowledgement ([`fanout`]) is served by tgtd
//! ([`tgt`]); [`reconcile`] wires it to the CStorVolume and its CVRs and reports the CV status
//! computed by [`status`].

pub mod fanout;
pub mod fuse;
pub mod gate;
pub mod istgt;
pub mod quorum;
pub mod reconcile;
pub mod snapshot;
pub mod status;
pub mod tgt;
pub mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::runner::RunError;

/// What `cstor volume-manager` is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace of the CV and CVRs (`openebs`).
    pub namespace: String,
    /// UID of the one CStorVolume this process serves (`OPENEBS_IO_CSTOR_VOLUME_ID`).
    pub volume_uid: String,
    /// Where the fan-out is mounted; tgt serves `<mount_dir>/lun`.
    pub mount_dir: PathBuf,
    /// tgtd's control port (`tgtadm -C`), None for the default socket.
    pub tgt_control_port: Option<u16>,
    /// Node name → that node's filesystem root (`CSTOR_NODE_ROOTS`); replica paths of other
    /// nodes are used as they are.
    pub node_roots: BTreeMap<String, PathBuf>,
    /// Node name → where replica files live on that node (`CSTOR_REPLICA_ROOTS`, in the
    /// node's own paths); [`status::DEFAULT_REPLICA_ROOT`] for a node not named.
    pub replica_roots: BTreeMap<String, PathBuf>,
    /// Safety-net status refresh (`RESYNC_INTERVAL`).
    pub resync: Duration,
    /// Timeout of each tgtadm command.
    pub command_timeout: Duration,
    /// Who may log in to the target (initiators, CHAP).
    pub access: tgt::Access,
    /// Which target serves the volume.
    pub target: Target,
    /// Where istgt's sockets and conf are (cluster).
    pub istgt: istgt::serve::Paths,
}

/// The target of a volume (docs/volumes.md, "Two data planes"): cStor's istgt with uZFS
/// replicas in a cluster, or tgt over our FUSE fan-out on the local stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    #[default]
    Istgt,
    Tgt,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "istgt" => Ok(Target::Istgt),
            "tgt" => Ok(Target::Tgt),
            other => Err(format!("unknown target {other:?} (istgt | tgt)")),
        }
    }
}

/// Runs the volume-manager of CV `config.volume_uid` with the configured target until
/// `shutdown` resolves (or the CV is deleted).
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    match config.target {
        Target::Istgt => istgt::serve::run(client, config, stop_rx).await,
        Target::Tgt => reconcile::run(client, config, stop_rx).await,
    }
}

/// The Event recorder of a volume-manager (its pod named as the instance).
fn recorder(client: &kube::Client) -> kube::runtime::events::Recorder {
    cstor_runtime::events::recorder(
        client.clone(),
        "cstor-volume-manager",
        std::env::var(cstor_api::keys::env::POD_NAME).ok(),
    )
}

/// Why a fan-out operation or the volume-manager failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// At least the consistency factor of replicas refused the write alike (no space, read
    /// only): the initiator gets `errno`, the replicas stay Healthy.
    #[error("write of {len} bytes at {offset} refused by the replicas alike (errno {errno})")]
    Refused { errno: i32, offset: u64, len: usize },
    #[error("only {healthy} healthy replicas, {needed} needed for I/O")]
    Quorum { healthy: usize, needed: usize },
    #[error("I/O of {len} bytes at {offset} is beyond the volume size {size}")]
    OutOfRange { offset: u64, len: usize, size: u64 },
    #[error("shrinking the volume from {from} to {to} bytes is not supported")]
    Shrink { from: u64, to: u64 },
    #[error("replica {0} is already being rebuilt")]
    Busy(String),
    #[error("rebuild of replica {id} stopped: {reason}")]
    RebuildAborted { id: String, reason: String },
    #[error(transparent)]
    Command(#[from] RunError),
    #[error("{0}")]
    Parse(String),
    #[error("no free tgt target id")]
    NoFreeTid,
    /// An API call failed; it names its step and object.
    #[error(transparent)]
    Api(#[from] cstor_runtime::errors::ApiError),
    #[error("CStorVolume {0}: {1}")]
    Invalid(String, String),
    #[error(
        "a replica was lost and the CStorVolume status recording it was not written within {seconds}s; not acknowledging"
    )]
    Unrecorded { seconds: u64 },
}
