//! The certificate Secret: CA (with its key, so only the leaf ever rotates) and serving pair.
//! [`plan`] decides from the Secret and what we want whether to write, and why; [`ensure`] does
//! the write with optimistic concurrency, so two replicas racing can't leave a mixed pair.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Ca, CertError, issue_serving, needs_renewal, new_ca};

/// Secret keys, those of the Go original (so its Secret is recognised) plus the CA key.
pub mod keys {
    pub const CA_CERT: &str = "ca.crt";
    pub const CA_KEY: &str = "ca.key";
    pub const SERVING_CERT: &str = "app.crt";
    pub const SERVING_KEY: &str = "app.pem";
}

/// Annotations that describe the serving certificate, so no X.509 parsing is needed to decide.
pub mod annotations {
    pub const NOT_BEFORE: &str = "cstor.openebs.io/serving-not-before";
    pub const NOT_AFTER: &str = "cstor.openebs.io/serving-not-after";
    pub const SANS: &str = "cstor.openebs.io/serving-sans";
}

/// Labels of the Go original's Secret, kept for tooling that selects on them.
pub const COMPONENT: &str = "cstor-admission-webhook";

/// What the Secret should hold.
#[derive(Clone, Debug)]
pub struct Want {
    pub namespace: String,
    pub name: String,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub lifetime: Duration,
}

impl Want {
    fn sans(&self) -> String {
        let mut all: Vec<String> = self.dns_names.clone();
        all.extend(self.ips.iter().map(|ip| ip.to_string()));
        all.join(",")
    }
}

/// The usable contents of the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Why the Secret is (re)written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No Secret yet.
    Created,
    /// A Secret without the CA key (for example the Go original's): a new CA is made.
    NoCaKey,
    /// The serving certificate is missing or its metadata unreadable.
    Unreadable,
    /// The Service names or IPs changed.
    SansChanged,
    /// A third of the serving certificate's life is left (or it has expired).
    RenewalDue,
}

impl Reason {
    /// A short PascalCase reason for Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Created => "Created",
            Reason::NoCaKey => "NoCaKey",
            Reason::Unreadable => "Unreadable",
            Reason::SansChanged => "SansChanged",
            Reason::RenewalDue => "RenewalDue",
        }
    }
}

/// What [`plan`] decided: the material to serve and, when the Secret must change, the new
/// Secret and why.
#[derive(Clone, Debug)]
pub struct Plan {
    pub material: Material,
    pub write: Option<(Reason, Secret)>,
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .filter(|s| !s.trim().is_empty())
}

fn annotation(secret: &Secret, key: &str) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get(key).cloned()
}

fn parse_time(s: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

fn format_time(t: SystemTime) -> Result<String, CertError> {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .map_err(|e| CertError::Time(e.to_string()))
}

/// The material of a Secret written by us, if complete; `None` for anything else.
pub fn material_of(secret: &Secret) -> Option<Material> {
    Some(Material {
        ca_pem: text(secret, keys::CA_CERT)?,
        cert_pem: text(secret, keys::SERVING_CERT)?,
        key_pem: text(secret, keys::SERVING_KEY)?,
        not_before: parse_time(&annotation(secret, annotations::NOT_BEFORE)?)?,
        not_after: parse_time(&annotation(secret, annotations::NOT_AFTER)?)?,
    })
}

/// Decides what the Secret must hold at `now`. Pure apart from key generation.
pub fn plan(existing: Option<&Secret>, want: &Want, now: SystemTime) -> Result<Plan, CertError> {
    let ca_kept = existing.and_then(|s| {
        Some(Ca {
            cert_pem: text(s, keys::CA_CERT)?,
            key_pem: text(s, keys::CA_KEY)?,
        })
    });
    let reason = match (existing, &ca_kept) {
        (None, _) => Some(Reason::Created),
        (Some(_), None) => Some(Reason::NoCaKey),
        (Some(s), Some(_)) => match material_of(s) {
            None => Some(Reason::Unreadable),
            Some(_) if annotation(s, annotations::SANS).as_deref() != Some(&want.sans()) => {
                Some(Reason::SansChanged)
            }
            Some(m) if needs_renewal(m.not_before, m.not_after, now) => Some(Reason::RenewalDue),
            Some(m) => {
                return Ok(Plan {
                    material: m,
                    write: None,
                });
            }
        },
    };
    let ca = match ca_kept {
        Some(ca) => ca,
        None => new_ca(now)?,
    };
    let serving = issue_serving(&ca, &want.dns_names, &want.ips, now, want.lifetime)?;
    let material = Material {
        ca_pem: ca.cert_pem.clone(),
        cert_pem: serving.cert_pem.clone(),
        key_pem: serving.key_pem.clone(),
        not_before: serving.not_before,
        not_after: serving.not_after,
    };
    let mut metadata = existing
        .map(|s| s.metadata.clone())
        .unwrap_or_else(|| ObjectMeta {
            name: Some(want.name.clone()),
            namespace: Some(want.namespace.clone()),
            ..ObjectMeta::default()
        });
    metadata.managed_fields = None;
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert("app".into(), COMPONENT.into());
    labels.insert("openebs.io/component-name".into(), COMPONENT.into());
    let notes = metadata.annotations.get_or_insert_with(BTreeMap::new);
    notes.insert(
        annotations::NOT_BEFORE.into(),
        format_time(serving.not_before)?,
    );
    notes.insert(
        annotations::NOT_AFTER.into(),
        format_time(serving.not_after)?,
    );
    notes.insert(annotations::SANS.into(), want.sans());
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let data = BTreeMap::from([
        (keys::CA_CERT.to_string(), bytes(&ca.cert_pem)),
        (keys::CA_KEY.to_string(), bytes(&ca.key_pem)),
        (keys::SERVING_CERT.to_string(), bytes(&serving.cert_pem)),
        (keys::SERVING_KEY.to_string(), bytes(&serving.key_pem)),
    ]);
    let secret = Secret {
        metadata,
        data: Some(data),
        // The type is immutable; an existing Secret keeps its own.
        type_: existing
            .and_then(|s| s.type_.clone())
            .or_else(|| Some("Opaque".into())),
        ..Secret::default()
    };
    Ok(Plan {
        material,
        write: reason.map(|r| (r, secret)),
    })
}

/// Errors of keeping the Secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name}: still conflicting after {attempts} attempts")]
    Conflict {
        namespace: String,
        name: String,
        attempts: u32,
    },
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Reads the Secret and writes it when [`plan`] says so (create, or replace at the read
/// resourceVersion; a conflict means another writer won, so read again). Returns what to
/// serve and the reason when this call wrote.
pub async fn ensure(
    api: &Api<Secret>,
    want: &Want,
    now: SystemTime,
) -> Result<(Material, Option<Reason>), SecretError> {
    let err = |source| SecretError::Api {
        namespace: want.namespace.clone(),
        name: want.name.clone(),
        source,
    };
    const ATTEMPTS: u32 = 4;
    for _ in 0..ATTEMPTS {
        let existing = api.get_opt(&want.name).await.map_err(err)?;
        let plan = plan(existing.as_ref(), want, now)?;
        let Some((reason, secret)) = plan.write else {
            return Ok((plan.material, None));
        };
        let written = match existing {
            None => api.create(&PostParams::default(), &secret).await,
            Some(_) => {
                api.replace(&want.name, &PostParams::default(), &secret)
                    .await
            }
        };
        match written {
            Ok(_) => return Ok((plan.material, Some(reason))),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(SecretError::Conflict {
        namespace: want.namespace.clone(),
        name: want.name.clone(),
        attempts: ATTEMPTS,
    })
}
