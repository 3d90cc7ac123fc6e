//! HTTPS: a CA and a server certificate made here with rcgen; the official `openai` SDK given
//! that CA (and refused without it); ALPN offers HTTP/2 and HTTP/1.1; a certificate replaced
//! on disk is served to new connections without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;

use crate::auth_support::*;
use crate::common::{Server, start_with};

/// A CA's PEM, and a certificate for `localhost` and 127.0.0.1 it signed, with its key.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("nfai test CA {name}"));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        ca: ca.pem(),
        cert: leaf.pem(),
        key: leaf_key.serialize_pem(),
    }
}

/// Writes the server's files whole (renamed into place).
fn install(dir: &Path, p: &Pki) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (path, text) in [(&key, &p.key), (&cert, &p.cert)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert, key)
}

fn tls_server(dir: &Path, p: &Pki, models: &[&str]) -> Server {
    let (cert, key) = install(dir, p);
    let mut a = args(dir, models);
    a.tls_cert = Some(cert);
    a.tls_key = Some(key);
    let mut s = start_with(a);
    s.base = s.base.replace("http://", "https://");
    s
}

/// A client that trusts only `ca`.
fn trusting(ca: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// The protocol the server picks when a client offers `alpn`.
async fn negotiated(addr: &str, ca: &str, alpn: &[&[u8]]) -> Option<Vec<u8>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

#[tokio::test]
async fn https_serves_the_openai_sdk_over_http2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki("sdk");
    let s = tls_server(dir.path(), &p, &["smollm2-135m-instruct"]);
    let addr = s.base.trim_start_matches("https://").to_string();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let res = trusting(&p.ca)
        .post(format!("https://localhost:{port}/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "tls"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        negotiated(&addr, &p.ca, &[b"h2", b"http/1.1"])
            .await
            .as_deref(),
        Some(&b"h2"[..])
    );
    assert_eq!(
        negotiated(&addr, &p.ca, &[b"http/1.1"]).await.as_deref(),
        Some(&b"http/1.1"[..])
    );
    // Plain HTTP on the TLS port gets no answer it could mistake for one.
    let plain = reqwest::get(format!("http://{addr}/health")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &p.ca).unwrap();
    let py = tokio::task::spawn_blocking(|| {
        crate::common::python_with(
            ".venv-test",
            "openai",
            crate::openai_sdk::OPENAI_VERSION,
            "NFAI_TEST_PYTHON",
        )
    })
    .await
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e")
        .join("tls_sdk.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .arg(format!(
            "https://localhost:{}/v1",
            addr.rsplit(':').next().unwrap()
        ))
        .arg(&ca)
        .arg(key["secret"].as_str().unwrap())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tls_sdk.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki("first");
    let s = tls_server(dir.path(), &first, &[]);
    let health = format!("{}/health", s.base.replace("127.0.0.1", "localhost"));
    let res = trusting(&first.ca).get(&health).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let second = pki("second");
    assert!(trusting(&second.ca).get(&health).send().await.is_err());
    install(dir.path(), &second);
    eventually("the new certificate is served", || async {
        trusting(&second.ca).get(&health).send().await.is_ok()
    })
    .await;
    assert!(trusting(&first.ca).get(&health).send().await.is_err());

    // A broken pair is not loaded: the server keeps the last good certificate.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(nfai_router::tls::RELOAD_CHECK_EVERY * 3).await;
    let res = trusting(&second.ca).get(&health).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
