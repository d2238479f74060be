//! `/validate`, `/mutate` and `/convert` handlers: decode reviews, gather facts, call policy.
//! Filled by the webhooks and conversion issues.
