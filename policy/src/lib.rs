//! Admission rules as pure functions: typed objects and a facts snapshot in, a verdict out.
//! Filled by the webhooks issue; no I/O and no kube client here, ever.
