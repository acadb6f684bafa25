//! The provider binary as go-plugin's client sees it: started with the magic cookie and a
//! client certificate, it prints the handshake line, serves the negotiated protocol over
//! mutual TLS on an owner-only unix socket, refuses any other client certificate, and
//! ends on GRPCController/Shutdown. Protocol 5 is forced here, which Terraform never does
//! for a provider that also speaks 6.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acceptance_tests::terraform::provider_dir;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// A client certificate as go-plugin makes Terraform's: ECDSA P-521, marked as a CA.
struct ClientCert {
    pem: String,
    der: Vec<u8>,
    key: Vec<u8>,
}

fn client_cert() -> ClientCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    ClientCert {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        key: key.serialize_der(),
    }
}

/// The provider process, killed on drop if it is still running.
struct Provider {
    child: Child,
    line: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(protocols: &str, cert_pem: &str) -> Provider {
    let mut child = Command::new(provider_dir().join("terraform-provider-immutable"))
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", protocols)
        .env("PLUGIN_CLIENT_CERT", cert_pem)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start provider");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Provider { child, line }
}

/// Trusts exactly the certificate from the handshake line, as go-plugin's client does.
#[derive(Debug)]
struct PinnedServer(Vec<u8>, Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        assert_eq!(name.to_str(), "localhost");
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "unexpected server certificate".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

/// Fields of the handshake line: core version, protocol, network, address, "grpc", cert.
fn fields(line: &str) -> Vec<String> {
    line.trim_end().split('|').map(String::from).collect()
}

async fn connect(line: &str, cert: &ClientCert) -> Result<Channel, tonic::transport::Error> {
    use base64::Engine as _;
    let f = fields(line);
    let server_der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&f[5])
        .expect("unpadded base64 certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(server_der, provider)))
        .with_client_auth_cert(
            vec![CertificateDer::from(cert.der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let path = f[3].clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let (connector, path) = (connector.clone(), path.clone());
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").unwrap(), stream)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
}

#[tokio::test]
async fn protocol_5_over_pinned_mtls_and_clean_shutdown() {
    use tfplugin_proto::plugin::grpc_controller_client::GrpcControllerClient;
    use tfplugin_proto::tfplugin5::provider_client::ProviderClient;

    let cert = client_cert();
    let mut provider = start_provider("5", &cert.pem);
    let f = fields(&provider.line);
    assert_eq!(
        &f[..3],
        ["1", "5", "unix"],
        "handshake line: {}",
        provider.line
    );
    assert_eq!(f[4], "grpc");
    assert!(!f[5].ends_with('='), "certificate must be unpadded base64");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f[3]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "socket must be reachable by its owner only");
    }

    let channel = connect(&provider.line, &cert)
        .await
        .expect("connect with Terraform's certificate");
    let schema = ProviderClient::new(channel.clone())
        .get_schema(tfplugin_proto::tfplugin5::get_provider_schema::Request {})
        .await
        .expect("GetSchema over protocol 5")
        .into_inner();
    let provider_attrs: Vec<&str> = schema
        .provider
        .as_ref()
        .unwrap()
        .block
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert!(provider_attrs.contains(&"region"), "{provider_attrs:?}");
    assert!(schema.server_capabilities.unwrap().plan_destroy);

    let stranger = client_cert();
    let refused = match connect(&provider.line, &stranger).await {
        Err(_) => true,
        Ok(ch) => ProviderClient::new(ch)
            .get_schema(tfplugin_proto::tfplugin5::get_provider_schema::Request {})
            .await
            .is_err(),
    };
    assert!(refused, "a client with another certificate must be refused");

    GrpcControllerClient::new(channel)
        .shutdown(tfplugin_proto::plugin::Empty {})
        .await
        .expect("Shutdown");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = provider.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "provider still running 5s after Shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        status.success(),
        "provider exit status after Shutdown: {status}"
    );
    assert!(
        !std::path::Path::new(&f[3]).exists(),
        "socket removed on exit"
    );
}

#[test]
fn run_by_hand_it_says_what_it_is_and_fails() {
    let out = Command::new(provider_dir().join("terraform-provider-immutable"))
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("is a Terraform provider plugin"), "{text}");
}

#[test]
fn protocol_6_is_chosen_when_offered() {
    let cert = client_cert();
    let provider = start_provider("5,6", &cert.pem);
    assert_eq!(fields(&provider.line)[1], "6");
}

#[test]
fn debug_mode_prints_reattach_settings() {
    let mut child = Command::new(provider_dir().join("terraform-provider-immutable"))
        .arg("-debug")
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    for _ in 0..4 {
        reader.read_line(&mut text).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    let json = text
        .split("TF_REATTACH_PROVIDERS='")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .expect(&text);
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let entry = &v["registry.terraform.io/immutable-infra/immutable"];
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Addr"]["Network"], "unix");
}
