//! Unit tests of the pure decisions, parsers and object builders, in the crate so that the
//! helpers they test can stay `pub(crate)`.

mod discovery;
mod istgt_decide;
mod pool_commands;
mod pool_manager_decide;
mod pool_manager_patches;
mod pool_manager_zfs;
mod replica_decide;
mod volume_quorum;
mod volume_replica_files;
mod volume_status;
mod zpool_parsers;
