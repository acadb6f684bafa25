//! The go-plugin handshake: how Terraform and a provider agree to talk.
//!
//! Terraform starts the provider with a magic cookie and the protocol versions it speaks
//! in the environment, and reads one line from the provider's stdout naming the chosen
//! version, the address to dial and the server certificate.

use std::fmt;

/// The cookie Terraform sets for every provider it starts (go-plugin `MagicCookieKey`).
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// The value Terraform uses for it.
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// go-plugin's own wire version, the first field of the handshake line.
const CORE_PROTOCOL_VERSION: u32 = 1;

/// The Terraform plugin protocol versions this binary serves, highest first.
pub const SUPPORTED_PROTOCOLS: [u32; 2] = [6, 5];

/// What a person sees when they run the binary by hand.
pub const RUN_BY_HAND: &str = "terraform-provider-immutable is a Terraform provider plugin: \
Terraform starts it by itself. Configure it in a terraform block \
(source = \"immutable-infra/immutable\") and run `terraform init`; to attach a debugger, \
run it with -debug.";

/// True when the process was started by Terraform (or another go-plugin host).
pub fn cookie_present(cookie: Option<&str>) -> bool {
    cookie == Some(MAGIC_COOKIE_VALUE)
}

/// Picks the highest protocol version both sides speak from `PLUGIN_PROTOCOL_VERSIONS`
/// (a comma-separated list). Without the variable go-plugin falls back to the plugin's
/// default, which for this provider is 6.
pub fn negotiate_protocol(offered: Option<&str>) -> Result<u32, String> {
    let Some(offered) = offered else {
        return Ok(SUPPORTED_PROTOCOLS[0]);
    };
    let offered: Vec<u32> = offered
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    SUPPORTED_PROTOCOLS
        .into_iter()
        .find(|v| offered.contains(v))
        .ok_or_else(|| {
            format!(
                "Terraform offered plugin protocol versions {offered:?}, but this provider speaks \
                 only 5 and 6: use Terraform 0.12 or later (1.0 or later for protocol 6)"
            )
        })
}

/// Where the server listens, as go-plugin names it on the handshake line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(std::path::PathBuf),
    Tcp(std::net::SocketAddr),
}

impl Address {
    pub fn network(&self) -> &'static str {
        match self {
            Address::Unix(_) => "unix",
            Address::Tcp(_) => "tcp",
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// The line Terraform reads from stdout: `CORE|PROTO|NETWORK|ADDR|grpc|CERT`, where CERT
/// is the server's DER certificate in unpadded standard base64, or empty without TLS.
pub fn handshake_line(protocol: u32, address: &Address, server_cert_der: Option<&[u8]>) -> String {
    use base64::Engine as _;
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!(
        "{CORE_PROTOCOL_VERSION}|{protocol}|{}|{address}|grpc|{cert}\n",
        address.network()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_terraforms_cookie_is_accepted() {
        assert!(cookie_present(Some(MAGIC_COOKIE_VALUE)));
        assert!(!cookie_present(Some("wrong")));
        assert!(!cookie_present(None));
    }

    #[test]
    fn highest_common_protocol_wins() {
        assert_eq!(negotiate_protocol(Some("5,6")), Ok(6));
        assert_eq!(negotiate_protocol(Some("6,5")), Ok(6));
        assert_eq!(negotiate_protocol(Some("5")), Ok(5));
        assert_eq!(negotiate_protocol(Some("4, 5")), Ok(5));
        assert_eq!(negotiate_protocol(Some("6,7")), Ok(6));
        assert_eq!(negotiate_protocol(None), Ok(6));
        assert!(negotiate_protocol(Some("3,4"))
            .unwrap_err()
            .contains("[3, 4]"));
    }

    #[test]
    fn handshake_line_has_unpadded_certificate() {
        let addr = Address::Unix("/tmp/plugin1/provider.sock".into());
        // 4 bytes encode to 6 base64 characters plus "==" padding, which must be absent.
        let line = handshake_line(6, &addr, Some(&[1, 2, 3, 4]));
        assert_eq!(line, "1|6|unix|/tmp/plugin1/provider.sock|grpc|AQIDBA\n");
        let tcp = Address::Tcp("127.0.0.1:10001".parse().unwrap());
        assert_eq!(
            handshake_line(5, &tcp, None),
            "1|5|tcp|127.0.0.1:10001|grpc|\n"
        );
    }
}
