//! `cstor.openebs.io/v1alpha1`: the 1.x CSPC and CSPI schema (docs/admission.md A, B).
//!
//! These are the OpenEBS 1.x `CStorPoolCluster` / `CStorPoolInstance` types (maya's
//! `openebs.io/v1alpha1` Go types), served under `cstor.openebs.io` beside the `v1` storage
//! version and converted by the conversion webhook. As in Go, hardly any field is omitempty: they
//! are always serialized, nil pointers as `null`, and `null` slices and maps parse as empty.

pub mod cspc;
pub mod cspi;

pub use cspc::*;
pub use cspi::*;
