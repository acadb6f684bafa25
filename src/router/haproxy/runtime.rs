//! HAProxy's Runtime API (the stats socket): how to reach it, one exchange per call, and
//! the replies read into types. The protocol is text: one line of `;`-separated commands,
//! the reply read to EOF; a successful write answers nothing or a short confirmation,
//! errors are sentences ("No such server.").

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ssh::{self, SshTarget};
use crate::router::RouterError;

/// The bound of one exchange: HAProxy answers in milliseconds, so anything longer is a
/// hung socket or host, never a reason to hang an apply.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Replies (or their beginnings) that mean a command failed.
const ERRORS: [&str; 12] = [
    "No such",
    "Can't find",
    "Unknown command",
    "Permission denied",
    "This command is restricted",
    "Backend must use",
    "Require",
    "Invalid",
    "invalid",
    "error",
    "Error",
    "cannot",
];

/// Where the Runtime API socket is.
#[derive(Clone, Debug)]
pub enum Transport {
    /// A Unix socket on this host.
    Local(PathBuf),
    /// A Unix socket on a remote host, through an SSH channel.
    Ssh { target: SshTarget, socket: String },
}

/// `unix:///run/haproxy/admin.sock` to its path. Only Unix sockets: the Runtime API has no
/// authentication, so TCP is never offered.
pub fn parse_runtime_api(text: &str) -> Result<PathBuf, String> {
    match text.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') && path.len() > 1 => Ok(PathBuf::from(path)),
        _ => Err(format!(
            "{text:?} is not a Runtime API socket: use unix:///path/to/admin.sock (HAProxy's `stats socket` path; other hosts through an ssh block, never TCP, which the Runtime API cannot authenticate)"
        )),
    }
}

impl Transport {
    fn describe(&self) -> String {
        match self {
            Transport::Local(path) => format!("unix://{}", path.display()),
            Transport::Ssh { target, socket } => {
                format!("unix://{socket} on {}:{}", target.host, target.port)
            }
        }
    }

    /// Sends one line and reads the reply to EOF.
    async fn exchange(&self, line: &str) -> Result<String, RouterError> {
        let input = format!("{line}\n");
        let reply = match self {
            Transport::Local(path) => {
                let talk = async {
                    let mut stream = tokio::net::UnixStream::connect(path).await?;
                    stream.write_all(input.as_bytes()).await?;
                    let mut reply = Vec::new();
                    stream.read_to_end(&mut reply).await?;
                    Ok::<_, std::io::Error>(reply)
                };
                match tokio::time::timeout(EXCHANGE_TIMEOUT, talk).await {
                    Ok(Ok(reply)) => reply,
                    Ok(Err(e)) => return Err(self.unreachable(&e)),
                    Err(_) => {
                        return Err(RouterError::Failed(format!(
                        "HAProxy's Runtime API at {} did not answer within {EXCHANGE_TIMEOUT:?}",
                        self.describe()
                    )))
                    }
                }
            }
            Transport::Ssh { target, socket } => {
                ssh::exchange(target, socket, input.as_bytes(), EXCHANGE_TIMEOUT)
                    .await
                    .map_err(|e| {
                        RouterError::Failed(format!(
                            "cannot reach HAProxy's Runtime API at {}: {e}",
                            self.describe()
                        ))
                    })?
            }
        };
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    fn unreachable(&self, e: &std::io::Error) -> RouterError {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "Terraform's user needs write access to the socket (its file mode and owner in `stats socket ... mode 660 user ... group ...`)"
            }
            _ => "is HAProxy running, with `stats socket <path> level admin` in its global section?",
        };
        RouterError::Failed(format!(
            "cannot reach HAProxy's Runtime API at {}: {e} ({hint})",
            self.describe()
        ))
    }
}

/// One server of a backend, from `show stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStat {
    pub name: String,
    pub addr: String,
    pub port: u16,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, or `UP 1/3` / `DOWN 1/2` mid-sequence.
    pub status: String,
    /// The weight set for the server (`uweight` where HAProxy has it).
    pub weight: u32,
    /// `L7OK`, `L4CON`, `L7STS`, `INI`, ...
    pub check_status: String,
    pub check_code: Option<u16>,
    pub check_desc: String,
    /// Current sessions.
    pub scur: u64,
}

/// The first error among `lines` of a reply to `line`.
fn refused<'a>(line: &str, lines: impl Iterator<Item = &'a str>) -> Result<(), RouterError> {
    let Some(error) = lines
        .map(str::trim)
        .find(|l| ERRORS.iter().any(|e| l.starts_with(e)))
    else {
        return Ok(());
    };
    let hint = if error.starts_with("Permission denied") {
        " (the stats socket needs `level admin`)"
    } else {
        ""
    };
    Err(RouterError::Failed(format!(
        "HAProxy refused `{line}`: {error}{hint}"
    )))
}

/// The Runtime API of one HAProxy.
#[derive(Clone, Debug)]
pub struct RuntimeApi {
    transport: Transport,
}

impl RuntimeApi {
    pub fn new(transport: Transport) -> RuntimeApi {
        RuntimeApi { transport }
    }

    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Runs commands that change HAProxy in one exchange; any error reply fails the whole,
    /// with the command line named.
    pub async fn run(&self, commands: &[String]) -> Result<String, RouterError> {
        if commands.is_empty() {
            return Ok(String::new());
        }
        let line = commands.join("; ");
        let reply = self.exchange(&line).await?;
        refused(&line, reply.lines())?;
        Ok(reply)
    }

    /// Runs one command that reads: its reply is data, so only its first line can be an
    /// error.
    pub async fn read(&self, command: &str) -> Result<String, RouterError> {
        let reply = self.exchange(command).await?;
        refused(command, reply.lines().take(1))?;
        Ok(reply)
    }

    async fn exchange(&self, line: &str) -> Result<String, RouterError> {
        tracing::debug!(commands = %line, "HAProxy Runtime API");
        self.transport.exchange(line).await
    }

    /// `show info`'s Version, as (major, minor).
    pub async fn version(&self) -> Result<(String, (u32, u32)), RouterError> {
        let info = self.read("show info").await?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("Version: "))
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut parts = version
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let numbers = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Ok((version, numbers))
    }

    /// The servers of `backend`, from `show stat` (read by column names, which differ
    /// between versions). `NotFound` when there is no such backend.
    pub async fn servers(&self, backend: &str) -> Result<Vec<ServerStat>, RouterError> {
        let reply = self.read("show stat").await?;
        let mut lines = reply.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let at = |fields: &[&str], name: &str| -> String {
            column(name)
                .and_then(|i| fields.get(i))
                .unwrap_or(&"")
                .to_string()
        };
        let mut found = false;
        let mut servers = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if at(&fields, "pxname") != backend {
                continue;
            }
            let name = at(&fields, "svname");
            if name == "BACKEND" {
                found = true;
                continue;
            }
            if name == "FRONTEND" {
                continue;
            }
            let address = at(&fields, "addr");
            let (addr, port) = match address.rsplit_once(':') {
                Some((a, p)) => (
                    a.trim_matches(['[', ']']).to_string(),
                    p.parse().unwrap_or(0),
                ),
                None => (address, 0),
            };
            let number = |name: &str| at(&fields, name).parse::<u64>().unwrap_or(0);
            let weight = match at(&fields, "uweight").parse::<u32>() {
                Ok(w) => w,
                Err(_) => number("weight") as u32,
            };
            servers.push(ServerStat {
                name,
                addr,
                port,
                status: at(&fields, "status"),
                weight,
                check_status: at(&fields, "check_status")
                    .trim_start_matches("* ")
                    .to_string(),
                check_code: at(&fields, "check_code").parse().ok(),
                check_desc: at(&fields, "check_desc"),
                scur: number("scur"),
            });
        }
        if found {
            Ok(servers)
        } else {
            Err(RouterError::NotFound(format!("backend {backend:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_sockets_are_a_runtime_api() {
        assert_eq!(
            parse_runtime_api("unix:///run/haproxy/admin.sock").unwrap(),
            PathBuf::from("/run/haproxy/admin.sock")
        );
        for bad in [
            "tcp://127.0.0.1:9999",
            "/run/haproxy/admin.sock",
            "unix://",
            "unix://rel.sock",
        ] {
            let e = parse_runtime_api(bad).unwrap_err();
            assert!(e.contains("unix:///path/to/admin.sock"), "{e}");
        }
    }
}
