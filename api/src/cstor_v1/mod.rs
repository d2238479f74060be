//! `cstor.openebs.io/v1`: the current cStor API.
//!
//! Each kind's module is re-exported whole; the per-kind value modules (`phase`,
//! `condition_type`, …) share names across kinds, so reach them through their kind's module
//! (`cspi::phase`, `cvr::phase`), never through this one.

pub mod backup;
pub mod cspc;
pub mod cspi;
pub mod cv;
pub mod cva;
pub mod cvc;
pub mod cvp;
pub mod cvr;

pub use backup::*;
pub use cspc::*;
#[allow(ambiguous_glob_reexports)]
pub use cspi::*;
#[allow(ambiguous_glob_reexports)]
pub use cv::*;
pub use cva::*;
#[allow(ambiguous_glob_reexports)]
pub use cvc::*;
pub use cvp::*;
#[allow(ambiguous_glob_reexports)]
pub use cvr::*;
