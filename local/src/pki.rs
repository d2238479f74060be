//! Per-run certificates of the local control plane: a CA, the apiserver's serving certificate,
//! client certificates (admin, controller-manager) and the service-account signing key.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::Error;

/// PEM files written into the control plane's directory.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_pem: String,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    pub admin: ClientCert,
    pub controller_manager: ClientCert,
}

/// A client certificate and key, PEM.
#[derive(Clone, Debug)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

fn rc(e: rcgen::Error) -> Error {
    Error::Pki(e.to_string())
}

/// Generates everything into `dir`.
pub fn generate(dir: &Path) -> Result<Pki, Error> {
    let ca_key = KeyPair::generate().map_err(rc)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cstor-local-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rc)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate().map_err(rc)?;
    let mut serving = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ])
    .map_err(rc)?;
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer).map_err(rc)?;

    let client = |cn: &str, org: Option<&str>| -> Result<ClientCert, Error> {
        let key = KeyPair::generate().map_err(rc)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        if let Some(o) = org {
            p.distinguished_name.push(DnType::OrganizationName, o);
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer).map_err(rc)?;
        Ok(ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    };
    let admin = client("cstor-admin", Some("system:masters"))?;
    let controller_manager = client("system:kube-controller-manager", None)?;
    let sa_key = KeyPair::generate().map_err(rc)?;

    let write = |name: &str, content: &str| -> Result<PathBuf, Error> {
        let p = dir.join(name);
        if name.ends_with(".key") {
            crate::write_private(&p, content.as_bytes())?;
        } else {
            std::fs::write(&p, content).map_err(|e| Error::io(&p, e))?;
        }
        Ok(p)
    };
    Ok(Pki {
        ca_cert: write("ca.crt", &ca_pem)?,
        ca_pem,
        serving_cert: write("apiserver.crt", &serving_cert.pem())?,
        serving_key: write("apiserver.key", &serving_key.serialize_pem())?,
        sa_key: write("sa.key", &sa_key.serialize_pem())?,
        sa_pub: write("sa.pub", &sa_key.public_key_pem())?,
        admin,
        controller_manager,
    })
}
