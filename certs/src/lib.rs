//! Self-signed CA and serving certificate (rcgen), kept in a Secret, injected as caBundle and
//! rotated before expiry. Filled by the webhooks issue.
