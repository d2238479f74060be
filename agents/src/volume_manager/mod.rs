//! The volume-manager: the local iSCSI target of one volume (docs/volumes.md, "The target
//! locally"; docs/architecture.md. A FUSE file ([`fuse`]) whose writes go to every
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

pub use reconcile::run;

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
