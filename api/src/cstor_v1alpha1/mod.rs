//! `cstor.openebs.io/v1alpha1`: the 1.x CSPC and CSPI schema (spec/conversion.md A, B).
