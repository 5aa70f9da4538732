//! End to end: TLS and mutual TLS with certificates made by the test (a
//! CA, a server certificate for localhost and 127.0.0.1, a client
//! certificate). A TLS client with the CA works and a plain-text client is
//! refused; with --tls-client-ca, a client without a certificate is
//! refused and one with it works; the command line does the same with
//! --ca-file and --client-cert/--client-key.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{data_dir, quarry_bin, TestServer};
use quarry::proto::{self, collections_client::CollectionsClient};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Writes ca.pem, server.pem, server.key, client.pem, client.key.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL takes a leaf whose subject equals its
    // issuer's for self-signed (rustls does not look).
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Quarry test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write("ca.pem", ca.pem());
    for (name, sans) in [
        (
            "server",
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
        ),
        ("client", vec!["quarry-client".to_string()]),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("quarry test {name}"));
        let cert = params.signed_by(&key, &issuer).unwrap();
        write(&format!("{name}.pem"), cert.pem());
        write(&format!("{name}.key"), key.serialize_pem());
    }
}

fn port(server: &TestServer) -> String {
    server.addr.rsplit(':').next().unwrap().to_owned()
}

async fn list(endpoint: Endpoint) -> Result<usize, String> {
    let channel: Channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    CollectionsClient::new(channel)
        .list_collections(proto::ListCollectionsRequest {})
        .await
        .map(|r| r.into_inner().collections.len())
        .map_err(|s| format!("{s}"))
}

fn tls(dir: &Path, client: bool) -> ClientTlsConfig {
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");
    if client {
        tls = tls.identity(Identity::from_pem(read("client.pem"), read("client.key")));
    }
    tls
}

fn cli(addr: &str, dir: &Path, client_cert: bool) -> std::process::Output {
    let mut c = Command::new(quarry_bin());
    c.args(["collections", "list", "--addr", addr, "--ca-file"])
        .arg(dir.join("ca.pem"));
    if client_cert {
        c.arg("--client-cert")
            .arg(dir.join("client.pem"))
            .arg("--client-key")
            .arg(dir.join("client.key"));
    }
    c.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls() {
    let dir = data_dir();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    certificates(&certs);
    let c = |n: &str| certs.join(n).to_str().unwrap().to_owned();

    // TLS.
    let server = TestServer::start_with(
        &dir.path().join("one"),
        &[
            "--tls-cert",
            &c("server.pem"),
            "--tls-key",
            &c("server.key"),
        ],
    );
    let https = format!("https://localhost:{}", port(&server));
    let secure = Endpoint::from_shared(https.clone())
        .unwrap()
        .tls_config(tls(&certs, false))
        .unwrap();
    assert_eq!(list(secure).await, Ok(0));
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", port(&server))).unwrap();
    assert!(list(plain).await.is_err(), "a plain-text client was served");
    let out = cli(&https, &certs, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.stop().success());

    // Mutual TLS.
    let server = TestServer::start_with(
        &dir.path().join("two"),
        &[
            "--tls-cert",
            &c("server.pem"),
            "--tls-key",
            &c("server.key"),
            "--tls-client-ca",
            &c("ca.pem"),
        ],
    );
    let https = format!("https://localhost:{}", port(&server));
    let without = Endpoint::from_shared(https.clone())
        .unwrap()
        .tls_config(tls(&certs, false))
        .unwrap();
    assert!(
        list(without).await.is_err(),
        "served without a client certificate"
    );
    let with = Endpoint::from_shared(https.clone())
        .unwrap()
        .tls_config(tls(&certs, true))
        .unwrap();
    assert_eq!(list(with).await, Ok(0));
    assert!(!cli(&https, &certs, false).status.success());
    let out = cli(&https, &certs, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.stop().success());
}

/// The HTTP port speaks TLS with the same PEM files, also to HTTP/1.1-only
/// clients (Python's urllib, as most scripts and the OpenAI client use),
/// and refuses plain text.
#[test]
fn the_http_port_speaks_tls_to_http1_clients_too() {
    let dir = data_dir();
    certificates(dir.path());
    let pem = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let server = TestServer::start_with(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            &pem("server.pem"),
            "--tls-key",
            &pem("server.key"),
        ],
    );
    let port = server
        .http_addr
        .as_deref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let script = format!(
        "import ssl, urllib.request\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         r = urllib.request.urlopen('https://localhost:{port}/v1/collections', context=ctx, timeout=30)\n\
         print(r.status, r.version, r.read().decode())",
        ca = pem("ca.pem"),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 11 is HTTP/1.1.
    assert!(stdout.starts_with("200 11 {"), "{stdout}");
    let plain = ureq::get(&format!("http://127.0.0.1:{port}/v1/collections"))
        .timeout(Duration::from_secs(10))
        .call();
    assert!(plain.is_err(), "plain text got an answer from the TLS port");
    server.stop();
}
