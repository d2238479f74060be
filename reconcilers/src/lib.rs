//! Cluster-scope controllers on kube::runtime: CSPC, claim binding, CVC, backup/restore,
//! upgrade and migration tasks. Filled by the pools and volumes issues.
