//! Admission rules as pure functions: typed objects and a facts snapshot in, a verdict out.
//! No I/O and no kube client here, ever (docs/admission.md; rule ids are that spec's).

pub mod backup;
pub mod cspc;
pub mod cspc_update;
pub mod cvc;
pub mod defaults;
pub mod facts;
pub mod migrate;
pub mod namespace;
pub mod node;
pub mod owned;
pub mod pvc;
pub mod verdict;
pub mod version;

pub use facts::{CspcFacts, NodeFact};
pub use verdict::Verdict;
