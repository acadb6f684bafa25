//! `make release` (scripts/release.sh) as a registry and an air-gapped team take it: the sums
//! signed with a throwaway GnuPG key verify with `gpg --verify` (and fail once tampered with),
//! and the network mirror it writes, served as static files over https on loopback, is where
//! `terraform init` installs the provider from.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acceptance_tests::cli::{
    init_installs_the_provider, output_within, platform, provider_version, run_script, script,
    text, TempDir,
};
use acceptance_tests::terraform::{clis, Needs, On};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::PrivatePkcs8KeyDer;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio_rustls::TlsAcceptor;

const GPG_TIMEOUT: Duration = Duration::from_secs(60);

/// A GnuPG home of the test's own; dropping it stops the agent gpg started for it.
struct Gpg(PathBuf);

impl Gpg {
    fn new(home: PathBuf) -> Gpg {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&home)
            .unwrap();
        Gpg(home)
    }

    async fn run(&self, args: &[&str]) -> Output {
        output_within(
            Command::new("gpg")
                .arg("--batch")
                .args(args)
                .env("GNUPGHOME", &self.0),
            GPG_TIMEOUT,
        )
        .await
    }

    /// A new signing key without a passphrase; returns its fingerprint.
    async fn generate_key(&self) -> String {
        let made = self
            .run(&[
                "--passphrase",
                "",
                "--quick-gen-key",
                "immutable release test <release-test@example.invalid>",
                "ed25519",
                "sign",
                "never",
            ])
            .await;
        assert!(
            made.status.success(),
            "gpg --quick-gen-key failed:\n{}",
            text(&made)
        );
        let listed = self.run(&["--with-colons", "--list-secret-keys"]).await;
        let listed = String::from_utf8_lossy(&listed.stdout);
        listed
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').nth(8))
            .unwrap_or_else(|| panic!("no fingerprint in gpg --list-secret-keys:\n{listed}"))
            .to_string()
    }

    /// `gpg --verify SIG DATA`: its success and status lines.
    async fn verify(&self, sig: &Path, data: &Path) -> (bool, String) {
        let sig = sig.to_str().unwrap();
        let data = data.to_str().unwrap();
        let out = self.run(&["--status-fd", "1", "--verify", sig, data]).await;
        (out.status.success(), text(&out))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", &self.0)
            .status();
    }
}

/// A static file server over https on 127.0.0.1, as a team would put in front of dist/mirror:
/// `.json` files as application/json, which the mirror protocol requires.
struct StaticServer {
    port: u16,
    /// A self-signed certificate for 127.0.0.1 and localhost, PEM.
    cert_pem: String,
    /// The paths asked for, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

impl StaticServer {
    async fn start(root: PathBuf) -> StaticServer {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()).into();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth()
                    .with_single_cert(vec![cert.cert.der().clone()], key)
            })
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        // Stops with the test's runtime.
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, root, seen) = (acceptor.clone(), root.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request: Request<_>| {
                        let path = request.uri().path().to_string();
                        seen.lock().unwrap().push(path.clone());
                        let root = root.clone();
                        async move { Ok::<_, Infallible>(serve_file(&root, &path).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StaticServer {
            port,
            cert_pem: cert.cert.pem(),
            requests,
        }
    }
}

/// `root`'s file at the URL path `path`, or 404 (also for any path leaving `root`).
async fn serve_file(root: &Path, path: &str) -> Response<Full<Bytes>> {
    let rel = path.trim_start_matches('/');
    let inside = rel.split('/').all(|c| !matches!(c, "" | "." | ".."));
    let content_type = match Path::new(rel).extension().and_then(OsStr::to_str) {
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    };
    let (status, body) = match tokio::fs::read(root.join(rel)).await {
        Ok(body) if inside => (StatusCode::OK, body),
        _ => (StatusCode::NOT_FOUND, b"not found\n".to_vec()),
    };
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn make_release_signs_the_sums_and_its_mirror_serves_terraform_init() {
    let Some(tf) = clis("release", Needs::Any, On::Newest).into_iter().next() else {
        return;
    };
    let version = provider_version();
    let platform = platform();
    let name = format!("terraform-provider-immutable_{version}");
    let tmp = TempDir::new("release");
    let gpg = Gpg::new(tmp.0.join("gnupg"));
    let fingerprint = gpg.generate_key().await;
    let dist = tmp.0.join("dist");

    // A key the keyring lacks: one actionable line, before any build.
    let unknown = run_script(
        "release.sh",
        &[
            ("DIST", dist.as_ref()),
            ("GNUPGHOME", gpg.0.as_ref()),
            (
                "GPG_FINGERPRINT",
                "0000000000000000000000000000000000000000".as_ref(),
            ),
        ],
    )
    .await;
    let errors: Vec<&str> = std::str::from_utf8(&unknown.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains("error"))
        .collect();
    assert!(
        !unknown.status.success()
            && matches!(&errors[..], [e] if e.contains("no secret key") && e.contains("GNUPGHOME")),
        "release.sh with an unknown key:\n{}",
        text(&unknown)
    );
    assert!(
        !dist.exists(),
        "release.sh wrote {} before failing",
        dist.display()
    );

    let said = script(
        "release.sh",
        &[
            ("PROFILE", "debug".as_ref()),
            ("DIST", dist.as_ref()),
            ("GNUPGHOME", gpg.0.as_ref()),
            ("GPG_FINGERPRINT", fingerprint.as_ref()),
        ],
    )
    .await;
    assert!(
        said.contains(&format!("signed {name}_SHA256SUMS with {fingerprint}")),
        "release.sh did not sign:\n{said}"
    );

    // The signature: binary (as the registry wants), by the key named, over these sums only.
    let sums = dist.join(format!("{name}_SHA256SUMS"));
    let sig = dist.join(format!("{name}_SHA256SUMS.sig"));
    let signature = std::fs::read(&sig)
        .unwrap_or_else(|e| panic!("{}: {e}; release.sh said:\n{said}", sig.display()));
    assert!(
        !signature.starts_with(b"-----BEGIN"),
        "the signature is ASCII-armored; a registry wants it binary"
    );
    let (good, status) = gpg.verify(&sig, &sums).await;
    assert!(
        good && status.contains(&format!("[GNUPG:] VALIDSIG {fingerprint} ")),
        "gpg --verify does not report a good signature by {fingerprint}:\n{status}"
    );
    let mut tampered = std::fs::read(&sums).unwrap();
    tampered[0] ^= 1;
    let tampered_sums = tmp.0.join("tampered_SHA256SUMS");
    std::fs::write(&tampered_sums, tampered).unwrap();
    let (good, status) = gpg.verify(&sig, &tampered_sums).await;
    assert!(
        !good && status.contains("[GNUPG:] BADSIG"),
        "gpg --verify accepted tampered sums:\n{status}"
    );

    // The mirror layout: the signed zip, its hashes, and the version listed.
    let zip = format!("{name}_{platform}.zip");
    let zip_sha256 = std::fs::read_to_string(&sums)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_suffix(&format!("  {zip}")).map(str::to_string))
        .unwrap_or_else(|| panic!("{zip} is not in the sums"));
    let provider_dir = dist.join("mirror/registry.terraform.io/immutable-infra/immutable");
    let json = |file: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(provider_dir.join(file)).unwrap()).unwrap()
    };
    assert_eq!(
        json("index.json"),
        serde_json::json!({"versions": {&version: {}}})
    );
    let archive = &json(&format!("{version}.json"))["archives"][&platform];
    assert_eq!(archive["url"], zip, "{archive}");
    let hashes: Vec<&str> = archive["hashes"]
        .as_array()
        .unwrap_or_else(|| panic!("no hashes in {archive}"))
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    assert!(
        hashes.contains(&format!("zh:{zip_sha256}").as_str()),
        "{archive}"
    );
    let h1 = *hashes
        .iter()
        .find(|h| h.starts_with("h1:"))
        .unwrap_or_else(|| panic!("no h1: hash in {archive}"));
    assert!(
        std::fs::read(provider_dir.join(&zip)).unwrap() == std::fs::read(dist.join(&zip)).unwrap(),
        "the mirror's {zip} differs from the signed one"
    );

    // Served over https from loopback, trusted through SSL_CERT_FILE (Go's TLS honours it);
    // the certificate's IP address SAN serves https://127.0.0.1 (as its DNS one localhost).
    let server = StaticServer::start(dist.join("mirror")).await;
    let cert = tmp.0.join("mirror.pem");
    std::fs::write(&cert, &server.cert_pem).unwrap();
    let cli_config = tmp.0.join("mirror.tfrc");
    std::fs::write(
        &cli_config,
        format!(
            "provider_installation {{\n  network_mirror {{\n    url = \"https://127.0.0.1:{}/\"\n  }}\n}}\n",
            server.port
        ),
    )
    .unwrap();
    let home = tmp.0.join("home");
    let work = tmp.0.join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let init = init_installs_the_provider(
        &tf,
        &work,
        &home,
        &cli_config,
        &version,
        &[("SSL_CERT_FILE", cert.as_ref())],
    )
    .await;

    let requests = server.requests.lock().unwrap().clone();
    for file in ["index.json", &format!("{version}.json"), &zip] {
        let path = format!("/registry.terraform.io/immutable-infra/immutable/{file}");
        assert!(
            requests.contains(&path),
            "[terraform {}] the mirror was not asked for {path}: {requests:?}\n{}",
            tf.version,
            init.log
        );
    }
    assert!(
        init.log.contains(&format!(
            "Installed immutable-infra/immutable v{version} (verified checksum)"
        )),
        "[terraform {}] init did not check the mirror's hashes:\n{}",
        tf.version,
        init.log
    );
    let installed = work.join(format!(
        ".terraform/providers/registry.terraform.io/immutable-infra/immutable/{version}/{platform}/terraform-provider-immutable_v{version}"
    ));
    assert!(
        installed.is_file(),
        "{} is missing:\n{}",
        installed.display(),
        init.log
    );
    // Terraform records only the h1: it computes of what it unpacked (a mirror's own hashes
    // only when signed, which the protocol has no way to say): the mirror's h1: is that one.
    assert!(
        init.lock.contains(&format!("\"{h1}\"")),
        "[terraform {}] the lock file lacks the mirror's {h1}:\n{}",
        tf.version,
        init.lock
    );
}
