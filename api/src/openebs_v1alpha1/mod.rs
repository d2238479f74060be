//! `openebs.io/v1alpha1`: NDM disks and claims, tasks, and maya's legacy kinds (migration input).
//!
//! Wire rules shared by these kinds (they are written by Go code in NDM, maya and the upgrade
//! tools, so they follow Go's `encoding/json`):
//!
//! * a field without `omitempty` is always serialized; it still parses when missing;
//! * a Go slice or map without `omitempty` may arrive as `null` (a nil slice): it parses as empty;
//! * Go never omits a non-pointer struct (`omitempty` has no effect on it). Nested ones tagged
//!   omitempty (`filesystem`, `deviceClaimDetails`, …) are `Option`s here, skipped when `None`, so
//!   both Go's `{}` and a hand-written absence round-trip; top-level `spec` and `status` are
//!   plain, always serialized, fields;
//! * phases and states are strings (unknown values round-trip); the known values are in the
//!   `*_phase` / `*_state` constant modules.
//!
//! The per-kind constant modules have distinct names (`claim_state`, `bdc_phase`, `task_phase`,
//! `csp_phase`, …) so they can all be reached through this module.

pub mod blockdevice;
pub mod legacy;
pub mod tasks;

pub use blockdevice::*;
pub use legacy::*;
pub use tasks::*;

/// Deserializes `null` as `T::default()`, as Go's `encoding/json` reads a nil slice or map.
pub(crate) fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    let value: Option<T> = serde::Deserialize::deserialize(de)?;
    Ok(value.unwrap_or_default())
}
