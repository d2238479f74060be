//! `openebs.io/v1alpha1`: NDM disks and claims, tasks, and maya's legacy kinds (migration input).
