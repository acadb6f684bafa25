//! AutoMTLS between Terraform and the provider.
//!
//! Terraform puts a fresh client certificate in `PLUGIN_CLIENT_CERT`; the provider answers
//! with a fresh self-signed server certificate on the handshake line. Both are throwaway
//! and self-signed, so there is no CA to chain to: the server accepts exactly the client
//! certificate it was given (pinned by its DER bytes) and checks that the peer holds its
//! key. Go's certificates are ECDSA P-521 and marked as CAs, which webpki's end-entity
//! verification rejects; pinning needs neither chain building nor that check, and
//! aws-lc-rs verifies P-521 signatures.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// The server's identity for one run: its certificate (for the handshake line) and the
/// TLS configuration that presents it.
pub struct ServerTls {
    pub cert_der: Vec<u8>,
    pub config: Arc<ServerConfig>,
}

/// Builds the server side of AutoMTLS for the client certificate Terraform sent (PEM).
pub fn server_tls(client_cert_pem: &str) -> Result<ServerTls, String> {
    let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| format!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}"))?;
    let (cert_der, key_der) = self_signed_localhost()?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedClientCert {
        pinned: client_cert.into_owned(),
        provider: provider.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    // gRPC clients insist on HTTP/2 being negotiated through ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls {
        cert_der,
        config: Arc::new(config),
    })
}

/// A self-signed certificate for `localhost`, the name go-plugin's client verifies.
/// P-256 rather than go-plugin's P-521: it is generated at every start, and P-256 is
/// several times faster to generate while Go verifies both.
fn self_signed_localhost() -> Result<(Vec<u8>, Vec<u8>), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("generating the server key failed: {e}"))?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|e| format!("server certificate: {e}"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "terraform-provider-immutable");
    // The client trusts this certificate as its own root, as with go-plugin's.
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("signing the server certificate failed: {e}"))?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

/// Accepts one client certificate, byte for byte, and nothing else.
#[derive(Debug)]
struct PinnedClientCert {
    pinned: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client certificate made the way go-plugin makes Terraform's: ECDSA P-521, a CA.
    pub(crate) fn go_style_client_cert() -> (String, Vec<u8>, Vec<u8>) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), cert.der().to_vec(), key.serialize_der())
    }

    /// Trusts the server certificate from the handshake line, as go-plugin's client does.
    #[derive(Debug)]
    struct TrustExactly(Vec<u8>, Arc<CryptoProvider>);

    impl ServerCertVerifier for TrustExactly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            assert_eq!(end_entity.as_ref(), self.0.as_slice());
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.1.signature_verification_algorithms.supported_schemes()
        }
    }

    /// A TLS client that presents the given certificate and key.
    pub(crate) fn client_config(
        server_cert: &[u8],
        cert: Vec<u8>,
        key: Vec<u8>,
    ) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustExactly(
                server_cert.to_vec(),
                provider,
            )))
            .with_client_auth_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        config
    }

    /// Runs one TLS exchange over an in-memory pipe; Ok when both sides completed it.
    async fn exchange(server: &ServerTls, client: rustls::ClientConfig) -> Result<(), String> {
        let (c, s) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.config.clone());
        let server_side = tokio::spawn(async move {
            let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(buf)
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from("localhost").unwrap();
        // In TLS 1.3 the client finishes before the server has checked its certificate;
        // the server's verdict is what counts.
        let mut client = connector.connect(name, c).await;
        if let Ok(tls) = &mut client {
            let _ = tls.write_all(b"ping").await;
            let _ = tls.flush().await;
        }
        // The client stays open until the server has judged it.
        let got = server_side.await.unwrap()?;
        drop(client);
        assert_eq!(&got, b"ping");
        Ok(())
    }

    #[tokio::test]
    async fn pinned_p521_client_certificate_is_accepted() {
        let (pem, der, key) = go_style_client_cert();
        let server = server_tls(&pem).unwrap();
        let client = client_config(&server.cert_der, der, key);
        exchange(&server, client).await.unwrap();
    }

    #[tokio::test]
    async fn any_other_client_certificate_is_refused() {
        let (pinned_pem, _, _) = go_style_client_cert();
        let (_, other_der, other_key) = go_style_client_cert();
        let server = server_tls(&pinned_pem).unwrap();
        let client = client_config(&server.cert_der, other_der, other_key);
        let err = exchange(&server, client).await.unwrap_err();
        assert!(err.contains("certificate"), "{err}");
    }

    #[tokio::test]
    async fn a_client_without_certificate_is_refused() {
        let (pem, _, _) = go_style_client_cert();
        let server = server_tls(&pem).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustExactly(
                server.cert_der.clone(),
                provider,
            )))
            .with_no_client_auth();
        assert!(exchange(&server, client).await.is_err());
    }

    #[test]
    fn server_certificate_names_localhost() {
        let (pem, _, _) = go_style_client_cert();
        let server = server_tls(&pem).unwrap();
        let der = CertificateDer::from(server.cert_der.clone());
        let parsed = webpki_check(&der);
        assert!(
            parsed,
            "server certificate must be valid for DNS name localhost"
        );
    }

    fn webpki_check(der: &CertificateDer<'_>) -> bool {
        // A CA certificate is rejected by end-entity verification, so look for the SAN
        // bytes directly: the DNS name "localhost" as a context-specific [2] IA5String.
        let needle = [&[0x82u8, 9][..], b"localhost"].concat();
        der.as_ref()
            .windows(needle.len())
            .any(|w| w == needle.as_slice())
    }

    #[test]
    fn garbage_client_certificate_is_an_error() {
        let err = server_tls("not a certificate").err().unwrap();
        assert!(err.contains("PLUGIN_CLIENT_CERT"));
    }
}
