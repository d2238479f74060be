//! The server over real TLS on loopback: health and readiness, the HTTP contract (415, 400,
//! 413), an admission answer with the uid echoed, and a certificate swapped without restart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use cstor_certs::{Ca, issue_serving, new_ca};
use cstor_policy::CspcFacts;
use cstor_server::tls::CertStore;
use cstor_server::{AppState, Bound, Limits, router};
use cstor_webhooks::facts::{Facts, FactsError, OwnerKind};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

struct Empty;

impl Facts for Empty {
    async fn cspc_facts(
        &self,
        _: &str,
        _: &str,
        _: &[&str],
    ) -> Result<std::sync::Arc<CspcFacts>, FactsError> {
        Ok(std::sync::Arc::default())
    }
    async fn clone_counts(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok((0, 0))
    }
    async fn owner_deleting(
        &self,
        _: OwnerKind,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<bool, FactsError> {
        Ok(false)
    }
    async fn namespace_holdings(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok((1, 0))
    }
    async fn migration_tasks(
        &self,
        _: &str,
    ) -> Result<Vec<cstor_api::openebs_v1alpha1::MigrationTask>, FactsError> {
        Ok(Vec::new())
    }
}

fn load(store: &CertStore, ca: &Ca) {
    let now = SystemTime::now();
    let s = issue_serving(
        ca,
        &["localhost".into()],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        now,
        Duration::from_secs(3600),
    )
    .expect("serving");
    store
        .load(&s.cert_pem, &s.key_pem, s.not_after)
        .expect("load");
}

struct Client {
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
}

impl Client {
    fn new(addr: SocketAddr, ca: &Ca) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).expect("ca"))
            .expect("root");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        // Full handshakes only: a resumed session would report the old certificate.
        config.resumption = rustls::client::Resumption::disabled();
        Client {
            addr,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// One request on a fresh connection: status, body, and the server's leaf certificate.
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, Vec<u8>) {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .expect("http handshake");
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(body))).expect("request"))
            .await
            .expect("response");
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned(), leaf)
    }
}

#[tokio::test]
async fn https_contract_readiness_and_hot_reload() {
    let ca = new_ca(SystemTime::now()).expect("ca");
    let certs = Arc::new(CertStore::default());
    load(&certs, &ca);
    let state = Arc::new(AppState::new(
        Empty,
        Default::default(),
        certs.clone(),
        Limits::default(),
    ));
    let bound = Bound::bind("127.0.0.1:0".parse().expect("addr"), certs.clone())
        .await
        .expect("bind");
    let addr = bound.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(
        router(state.clone()),
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let client = Client::new(addr, &ca);

    assert_eq!(client.send("GET", "/healthz", None, vec![]).await.0, 200);
    let (status, body, first_leaf) = client.send("GET", "/readyz", None, vec![]).await;
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "certificate loaded: true, cluster facts reachable: false"
        )
    );
    state.facts_ready.store(true, Ordering::Relaxed);
    assert_eq!(client.send("GET", "/readyz", None, vec![]).await.0, 200);

    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                    "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                    "name": "x", "namespace": "d", "operation": "CREATE", "userInfo": {"username": "a"},
                    "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, "dryRun": false},
    })
    .to_string()
    .into_bytes();
    let json = Some("application/json");
    assert_eq!(
        client
            .send("POST", "/validate", Some("text/plain"), review.clone())
            .await
            .0,
        415
    );
    assert_eq!(client.send("POST", "/validate", json, vec![]).await.0, 400);
    assert_eq!(
        client
            .send("POST", "/validate", json, b"{not json".to_vec())
            .await
            .0,
        400
    );
    assert_eq!(
        client
            .send("POST", "/validate", json, vec![b' '; 4 * 1024 * 1024])
            .await
            .0,
        413
    );
    let (status, body, _) = client.send("POST", "/validate", json, review.clone()).await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["response"]["uid"], "u-1");
    assert_eq!(answer["response"]["allowed"], true);
    // /convert over TLS: a v1alpha1 CSPC converted to v1, and a malformed one refused.
    let conversion = |object: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "c-1", "desiredAPIVersion": "cstor.openebs.io/v1", "objects": [object]},
        })
        .to_string()
        .into_bytes()
    };
    let old = serde_json::json!({
        "apiVersion": "cstor.openebs.io/v1alpha1", "kind": "CStorPoolCluster",
        "metadata": {"name": "pc"},
        "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "n1"},
                            "raidGroups": [{"type": "stripe", "blockDevices": [{"blockDeviceName": "a"}]}],
                            "poolConfig": {"defaultRaidGroupType": "stripe"}}]},
    });
    let (status, body, _) = client.send("POST", "/convert", json, conversion(old)).await;
    assert_eq!(status, 200);
    let conv: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (
            conv["response"]["uid"].as_str(),
            conv["response"]["result"]["status"].as_str(),
            conv["response"]["convertedObjects"][0]["spec"]["pools"][0]["poolConfig"]["dataRaidGroupType"].as_str(),
        ),
        (Some("c-1"), Some("Success"), Some("stripe"))
    );
    let bad = serde_json::json!({"apiVersion": "cstor.openebs.io/v1alpha1", "kind": "CStorPoolCluster",
                                 "metadata": {"name": "pc"}, "spec": {"pools": 7}});
    let (status, body, _) = client.send("POST", "/convert", json, conversion(bad)).await;
    assert_eq!(status, 200);
    let conv: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(conv["response"]["uid"], "c-1");
    assert_eq!(conv["response"]["result"]["status"], "Failure");
    assert!(
        conv["response"]["result"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("CStorPoolCluster pc: field spec.pools: invalid type")),
        "{conv}"
    );

    // Still healthy after the bad requests, and the metrics counted them.
    let (_, metrics, _) = client.send("GET", "/metrics", None, vec![]).await;
    assert!(metrics.contains("cstor_webhook_requests_total{webhook=\"validate\",kind=\"ConfigMap\",operation=\"CREATE\",allowed=\"true\"} 1"), "{metrics}");
    assert!(
        metrics.contains("cstor_webhook_http_errors_total{webhook=\"validate\",status=\"415\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cstor_webhook_cert_expiry_seconds"),
        "{metrics}"
    );

    // A new certificate is served on the next connection, without a restart.
    load(&certs, &ca);
    let (status, _, second_leaf) = client.send("GET", "/healthz", None, vec![]).await;
    assert_eq!(status, 200);
    assert_ne!(first_leaf, second_leaf);
    // A bad pair is refused and the current one kept.
    assert!(certs.load("garbage", "garbage", SystemTime::now()).is_err());
    assert_eq!(
        client.send("GET", "/healthz", None, vec![]).await.2,
        second_leaf
    );

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful stop")
        .expect("join");
}

#[tokio::test]
async fn a_very_slow_body_is_cut_off_and_the_server_stays_healthy() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = new_ca(SystemTime::now()).expect("ca");
    let certs = Arc::new(CertStore::default());
    load(&certs, &ca);
    let limits = Limits {
        body_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let state = Arc::new(AppState::new(
        Empty,
        Default::default(),
        certs.clone(),
        limits,
    ));
    let bound = Bound::bind("127.0.0.1:0".parse().expect("addr"), certs)
        .await
        .expect("bind");
    let addr = bound.local_addr().expect("addr");
    tokio::spawn(bound.serve(
        router(state),
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let client = Client::new(addr, &ca);

    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = client
        .connector
        .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
        .await
        .expect("handshake");
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":")
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    // Send nothing more: the server must answer on its own, well before this bound.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .expect("server answered a stalled body")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert_eq!(client.send("GET", "/healthz", None, vec![]).await.0, 200);
}
