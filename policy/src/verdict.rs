//! The outcome of an admission rule: allowed, or denied with the Go operator's HTTP-style code,
//! an optional reason and the exact message.

/// What a rule decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The Go operator's code: 200 allowed, 400 undecodable, 403 forbidden, 422 invalid, 500 internal.
    pub code: u16,
    /// A short machine-readable reason, where the Go operator sets one.
    pub reason: Option<String>,
    pub message: String,
}

impl Verdict {
    /// Allowed, with no message.
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            code: 200,
            reason: None,
            message: String::new(),
        }
    }

    /// Denied with `code` and `message`.
    pub fn deny(code: u16, message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            code,
            reason: None,
            message: message.into(),
        }
    }

    /// Adds a reason to a denial.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}
