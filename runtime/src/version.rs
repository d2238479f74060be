//! The version this build is (docs/upgrades.md): what it writes into `versionDetails` and
//! `openebs.io/version`, and what it compares objects with. The build's own, unless
//! `CSTOR_VERSION` says otherwise (the local runner sets it from a pod's image tag, so a pod of
//! image `openebs/cstor-rs:4.1.0` plays that release).

/// The build's version (the workspace's `version`).
pub const BUILT: &str = env!("CARGO_PKG_VERSION");

/// This process's version: `CSTOR_VERSION` when set and not empty, else [`BUILT`].
pub fn ours() -> String {
    std::env::var(cstor_api::keys::env::CSTOR_VERSION)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| BUILT.to_string())
}

/// Our image of `version` (every component runs the one `cstor` binary).
pub fn image(version: &str) -> String {
    format!("openebs/cstor-rs:{version}")
}
