//! Self-signed CA and serving certificate (rcgen) for the webhook server. The CA key is kept
//! (in a Secret, by the caller) so only the leaf rotates; the leaf is renewed when a third of
//! its life is left (docs/admission.md A.9). [`secret`] keeps them in a Secret; [`inject`]
//! keeps the caBundle of webhook configurations and CRD conversion stanzas current.

pub mod inject;
pub mod secret;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// Default lifetime of the serving certificate.
pub const DEFAULT_SERVING_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Lifetime of the CA: long, since rotating it means re-publishing every caBundle.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const CA_COMMON_NAME: &str = "cstor-webhook-ca";

/// Certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("invalid validity window: {0}")]
    Time(String),
}

/// The CA: certificate and private key, PEM.
#[derive(Clone, Debug)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A serving certificate with its validity window.
#[derive(Clone, Debug)]
pub struct Serving {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

fn odt(t: SystemTime) -> Result<OffsetDateTime, CertError> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| CertError::Time(e.to_string()))?
        .as_secs();
    OffsetDateTime::from_unix_timestamp(
        i64::try_from(secs).map_err(|e| CertError::Time(e.to_string()))?,
    )
    .map_err(|e| CertError::Time(e.to_string()))
}

fn ca_params(now: SystemTime) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = odt(now)?;
    params.not_after = odt(now + CA_LIFETIME)?;
    Ok(params)
}

/// A new CA valid from `now`.
pub fn new_ca(now: SystemTime) -> Result<Ca, CertError> {
    let key = KeyPair::generate()?;
    let cert = ca_params(now)?.self_signed(&key)?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The DNS names of a Service: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A serving certificate for `dns_names` and `ips` (127.0.0.1 in the local mode), signed by
/// `ca`, valid from `now` for `lifetime`.
pub fn issue_serving(
    ca: &Ca,
    dns_names: &[String],
    ips: &[IpAddr],
    now: SystemTime,
    lifetime: Duration,
) -> Result<Serving, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    // The issuer is rebuilt from the kept key and the CA's fixed name; its validity does not
    // matter for signing.
    let issuer = Issuer::new(ca_params(now)?, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let cn = dns_names
        .iter()
        .rev()
        .find(|n| n.ends_with(".svc"))
        .or(dns_names.first());
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(DnType::CommonName, cn.as_str());
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = odt(now)?;
    params.not_after = odt(now + lifetime)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Serving {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_before: now,
        not_after: now + lifetime,
    })
}

/// When to renew: once a third of the lifetime is left.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_after - lifetime / 3
}

/// Whether a certificate valid over `[not_before, not_after]` should be renewed at `now`.
pub fn needs_renewal(not_before: SystemTime, not_after: SystemTime, now: SystemTime) -> bool {
    now >= renew_at(not_before, not_after)
}
