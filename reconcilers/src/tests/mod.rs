//! Unit tests of the pure decisions, parsers and object builders, in the crate so that the
//! helpers they test can stay `pub(crate)`.

mod claims;
mod cspc_decisions;
mod cvc_common;
mod cvc_decisions;
mod cvc_objects;
mod cvc_placement;
mod go_shapes;
mod migrate_decisions;
mod migrate_volume_decisions;
mod support;
mod upgrade_decisions;
