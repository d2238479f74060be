//! Small builders of pod-spec pieces (env vars, mounts, volumes, ports) shared by the
//! Deployments the operators make (pool-manager, volume target).

use k8s_openapi::api::core::v1::{
    ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    LocalObjectReference, ObjectFieldSelector, SecurityContext, Volume, VolumeMount,
};

/// `name=value`.
pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// `name` from the pod's field `path` (`metadata.name`, `spec.nodeName`, …).
pub fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// An env var from key `key` of Secret `secret` (the kubelet fills it in; no API access
/// needed by the container).
pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(k8s_openapi::api::core::v1::SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// A hostPath volume of `type_` (`Directory`, `DirectoryOrCreate`).
pub fn host_path(name: &str, path: &str, type_: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: Some(type_.into()),
        }),
        ..Volume::default()
    }
}

/// An emptyDir volume.
pub fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// Volume `name` mounted at `path`.
pub fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

/// A TCP container port.
pub fn tcp_port(p: i32) -> ContainerPort {
    ContainerPort {
        container_port: p,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// A privileged security context (every container of the pool pods; the target's istgt and
/// volume-manager), as the Go operators set it.
pub fn privileged() -> Option<SecurityContext> {
    Some(SecurityContext {
        privileged: Some(true),
        ..SecurityContext::default()
    })
}

/// The names in `OPENEBS_IO_IMAGE_PULL_SECRETS` (comma-separated; entries blank after trimming
/// are dropped, so the chart's trailing comma gives no empty name).
pub fn pull_secret_names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

/// The pod's `imagePullSecrets` for `names`; none when the list is empty (as Go's empty list,
/// which is omitted when serialised).
pub fn pull_secrets(names: &[String]) -> Option<Vec<LocalObjectReference>> {
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|n| LocalObjectReference { name: n.clone() })
            .collect()
    })
}
