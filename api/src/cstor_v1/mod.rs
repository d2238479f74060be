//! `cstor.openebs.io/v1`: the current cStor API.

pub mod cspc;
pub use cspc::*;
