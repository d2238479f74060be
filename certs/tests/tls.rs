//! The certificates work for real TLS: a rustls server config accepts the chain and key, and a
//! client that trusts only our CA verifies the serving certificate for each SAN.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cstor_certs::{issue_serving, needs_renewal, new_ca, renew_at, service_dns_names};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[test]
fn serving_certificate_verifies_against_the_ca_for_every_san() {
    let now = SystemTime::now();
    let ca = new_ca(now).expect("ca");
    let names = service_dns_names("cstor-webhook", "openebs");
    let serving = issue_serving(
        &ca,
        &names,
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        now,
        Duration::from_secs(120),
    )
    .expect("serving");

    let chain =
        vec![CertificateDer::from_pem_slice(serving.cert_pem.as_bytes()).expect("cert pem")];
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).expect("key pem");
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key)
        .expect("cert and key match");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).expect("ca pem"))
        .expect("root");
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("verifier");
    let at = UnixTime::since_unix_epoch(
        (now + Duration::from_secs(60))
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("epoch"),
    );
    for name in names.iter().map(String::as_str).chain(["127.0.0.1"]) {
        let server = ServerName::try_from(name.to_string()).expect("name");
        verifier
            .verify_server_cert(&chain[0], &[], &server, &[], at)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let other = ServerName::try_from("evil.example".to_string()).expect("name");
    assert!(
        verifier
            .verify_server_cert(&chain[0], &[], &other, &[], at)
            .is_err()
    );
    let expired = UnixTime::since_unix_epoch(
        (now + Duration::from_secs(600))
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("epoch"),
    );
    let server = ServerName::try_from(names[0].clone()).expect("name");
    assert!(
        verifier
            .verify_server_cert(&chain[0], &[], &server, &[], expired)
            .is_err()
    );
}

#[test]
fn a_new_leaf_from_the_kept_ca_key_is_trusted_by_the_same_bundle() {
    let t0 = SystemTime::now();
    let ca = new_ca(t0).expect("ca");
    let names = service_dns_names("cstor-webhook", "openebs");
    let later = t0 + Duration::from_secs(80);
    let renewed =
        issue_serving(&ca, &names, &[], later, Duration::from_secs(120)).expect("renewed");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).expect("ca pem"))
        .expect("root");
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("verifier");
    let cert = CertificateDer::from_pem_slice(renewed.cert_pem.as_bytes()).expect("cert");
    let at = UnixTime::since_unix_epoch(
        (later + Duration::from_secs(10))
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("epoch"),
    );
    let server = ServerName::try_from(names[2].clone()).expect("name");
    verifier
        .verify_server_cert(&cert, &[], &server, &[], at)
        .expect("trusted after rotation");
}

#[test]
fn renewal_starts_when_a_third_of_the_life_is_left() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let end = start + Duration::from_secs(90 * 24 * 3600);
    assert_eq!(
        renew_at(start, end),
        start + Duration::from_secs(60 * 24 * 3600)
    );
    assert!(!needs_renewal(
        start,
        end,
        start + Duration::from_secs(59 * 24 * 3600)
    ));
    assert!(needs_renewal(
        start,
        end,
        start + Duration::from_secs(60 * 24 * 3600)
    ));
    let short_end = start + Duration::from_secs(120);
    assert!(!needs_renewal(
        start,
        short_end,
        start + Duration::from_secs(79)
    ));
    assert!(needs_renewal(
        start,
        short_end,
        start + Duration::from_secs(80)
    ));
}
