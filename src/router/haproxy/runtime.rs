//! HAProxy's Runtime API (the stats socket): how to reach it, one exchange per call, and
//! the replies read into types. The protocol is text: a line of commands, the reply read to
//! EOF. A write succeeds only when it answers exactly what HAProxy answers on success (see
//! [`SUCCESS`]); any other text is an error, whatever its first characters.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ssh::{self, SshTarget};
use crate::budget;
use crate::router::RouterError;

/// The bound of one exchange: HAProxy answers in milliseconds, so anything longer is a
/// hung socket or host, never a reason to hang an apply.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest reply read. The largest legitimate one is `show stat` of the backend: a
/// 1.6 KiB header and about 400 bytes a server (measured on 2.6: 250 with zero counters),
/// so 1 MiB is some 2,500 servers, far more than a blue/green backend holds.
pub const MAX_REPLY: usize = 1 << 20;

/// Each write command (by its first words) and the reply that alone means it succeeded,
/// without the newlines that end it: management.txt's "New server registered." and
/// "Server deleted.", nothing for the others (measured on 2.6.12). `set var` needs
/// experimental mode, which lasts one exchange, so it is sent after `experimental-mode on`
/// (which also answers nothing).
const SUCCESS: [(&str, &str, bool); 7] = [
    ("add server ", "New server registered.", false),
    ("del server ", "Server deleted.", false),
    ("set server ", "", false),
    ("enable health ", "", false),
    ("enable server ", "", false),
    ("set var ", "", true),
    ("experimental-mode on", "", false),
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

    /// Sends one line and reads the reply to EOF, within the exchange's own timeout, the
    /// operation's deadline and Ctrl-C ([`budget::bounded`]), whichever ends first.
    async fn exchange(&self, line: &str) -> Result<String, RouterError> {
        let what = format!("`{line}` on HAProxy's Runtime API at {}", self.describe());
        budget::bounded(what, self.send(line))
            .await
            .unwrap_or_else(|cut| Err(RouterError::Failed(cut.to_string())))
    }

    async fn send(&self, line: &str) -> Result<String, RouterError> {
        let input = format!("{line}\n");
        let reply = match self {
            Transport::Local(path) => {
                let talk = async {
                    let mut stream = tokio::net::UnixStream::connect(path).await?;
                    stream.write_all(input.as_bytes()).await?;
                    let mut reply = Vec::new();
                    (&mut stream)
                        .take(MAX_REPLY as u64 + 1)
                        .read_to_end(&mut reply)
                        .await?;
                    Ok::<_, std::io::Error>(reply)
                };
                match tokio::time::timeout(EXCHANGE_TIMEOUT, talk).await {
                    Ok(Ok(reply)) if reply.len() > MAX_REPLY => {
                        return Err(RouterError::Failed(format!(
                            "HAProxy's Runtime API at {} answered `{line}` with more than {} KiB, more than any reply the provider reads",
                            self.describe(),
                            MAX_REPLY / 1024
                        )))
                    }
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
            Transport::Ssh { target, socket } => ssh::exchange(
                target,
                socket,
                input.as_bytes(),
                EXCHANGE_TIMEOUT,
                MAX_REPLY,
            )
            .await
            .map_err(|e| {
                RouterError::Failed(format!(
                    "cannot reach HAProxy's Runtime API at {}: {e}",
                    self.describe()
                ))
            })?,
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
    /// Idle connections kept for reuse (`idle_conn_cur` + `safe_conn_cur`): HAProxy 2.6
    /// refuses to delete a server that has any.
    pub idle: u64,
}

/// A reply as an error text: its first lines, trimmed (an unknown command answers with
/// HAProxy's whole help), with what to do for a socket without `level admin`.
pub fn refusal(line: &str, reply: &str) -> String {
    let reply = reply.trim_matches('\n');
    let mut shown: String = reply.lines().take(3).collect::<Vec<_>>().join(" / ");
    if shown.len() < reply.len() {
        shown.push_str(" ...");
    }
    let hint = if reply.starts_with("Permission denied") {
        " (the stats socket needs `level admin`)"
    } else {
        ""
    };
    format!("HAProxy refused `{line}`: {shown:?}{hint}")
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

    /// Runs commands that change HAProxy, one exchange each, in order, and stops at the
    /// first whose reply is not its success reply. Not one `;` line: HAProxy runs every
    /// command of a line even after one fails, and concatenates their replies with nothing
    /// reliable between them (on 2.6 `add server` ends its reply with a blank line, `del
    /// server` does not), so a line can neither stop at a failure nor say which command
    /// failed. The error says which commands were applied and which were never sent.
    pub async fn run(&self, commands: &[String]) -> Result<(), RouterError> {
        for (i, command) in commands.iter().enumerate() {
            let Some(&(_, success, experimental)) = SUCCESS
                .iter()
                .find(|(verb, _, _)| command.starts_with(verb))
            else {
                return Err(RouterError::Failed(format!(
                    "provider bug: no known success reply for HAProxy's `{command}`"
                )));
            };
            let line = if experimental {
                format!("experimental-mode on; {command}")
            } else {
                command.clone()
            };
            let reply = self.exchange(&line).await?;
            // Only the newlines that end each reply are framing; the text must be exact.
            if reply.trim_matches('\n') != success {
                let refused = refusal(command, &reply);
                let applied = match &commands[..i] {
                    [] => String::new(),
                    done => format!("; applied before it: `{}`", done.join("`, `")),
                };
                let unsent = match &commands[i + 1..] {
                    [] => String::new(),
                    rest => format!("; not sent: `{}`", rest.join("`, `")),
                };
                return Err(RouterError::Failed(format!("{refused}{applied}{unsent}")));
            }
        }
        Ok(())
    }

    /// Runs one command that reads: its reply is data, which the caller checks for the
    /// shape it expects.
    pub async fn read(&self, command: &str) -> Result<String, RouterError> {
        self.exchange(command).await
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
            .ok_or_else(|| RouterError::Failed(refusal("show info", &info)))?
            .trim()
            .to_string();
        let mut parts = version
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let numbers = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Ok((version, numbers))
    }

    /// The servers of `backend`, from `show stat <backend> -1 -1` (read by column names,
    /// which differ between versions). `NotFound` when there is no such backend.
    pub async fn servers(&self, backend: &str) -> Result<Vec<ServerStat>, RouterError> {
        let command = format!("show stat {backend} -1 -1");
        let reply = self.read(&command).await?;
        if reply.trim_matches('\n') == "No such proxy." {
            return Err(RouterError::NotFound(format!("backend {backend:?}")));
        }
        let mut lines = reply.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with("pxname,"))
            .ok_or_else(|| RouterError::Failed(refusal(&command, &reply)))?
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
                idle: number("idle_conn_cur") + number("safe_conn_cur"),
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
pub(super) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A Runtime API on a Unix socket that answers each line with `answer(line)`, and the
    /// lines it was sent.
    pub fn fake(answer: fn(&str) -> String) -> (Transport, Arc<Mutex<Vec<String>>>) {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "immutable-runtime-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sent);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut line = Vec::new();
                let mut byte = [0u8];
                while stream.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                    line.push(byte[0]);
                }
                let line = String::from_utf8(line).unwrap();
                let reply = answer(&line);
                seen.lock().unwrap().push(line);
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        (Transport::Local(path), sent)
    }

    fn commands(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[tokio::test]
    async fn each_write_succeeds_only_on_its_documented_reply() {
        // The replies of HAProxy 2.6.12, as measured, ending newlines and all.
        let (transport, sent) = fake(|line| {
            match line
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .as_str()
            {
                "add server" => "New server registered.\n\n",
                "del server" => "Server deleted.\n",
                "experimental-mode on;" => "\n\n",
                _ => "\n",
            }
            .to_string()
        });
        let writes = commands(&[
            "add server web/blue_1 127.0.0.1:8080 check weight 0",
            "enable health web/blue_1",
            "set server web/blue_1 weight 256",
            "set var proc.x int(1)",
            "set server web/blue_1 state maint",
            "del server web/blue_1",
        ]);
        RuntimeApi::new(transport).run(&writes).await.unwrap();
        let sent = sent.lock().unwrap().clone();
        assert_eq!(sent.len(), writes.len(), "one exchange per command");
        assert_eq!(sent[3], "experimental-mode on; set var proc.x int(1)");
    }

    #[tokio::test]
    async fn a_refusal_is_an_error_whatever_its_words_and_stops_the_commands_after_it() {
        // HAProxy's own replies that begin like no error word.
        let (transport, sent) = fake(|line| {
            if line.starts_with("del server") {
                "Server still has connections attached to it, cannot remove it.\n".to_string()
            } else if line.ends_with("weight 256") {
                "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n\n".to_string()
            } else {
                "\n".to_string()
            }
        });
        let api = RuntimeApi::new(transport);
        let e = api
            .run(&commands(&[
                "set server web/blue_1 state maint",
                "del server web/blue_1",
                "del server web/blue_2",
            ]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`del server web/blue_1`")
                && e.contains("Server still has connections attached to it")
                && e.contains("applied before it: `set server web/blue_1 state maint`")
                && e.contains("not sent: `del server web/blue_2`"),
            "{e}"
        );
        assert_eq!(
            sent.lock().unwrap().len(),
            2,
            "nothing is sent after a refusal"
        );
        let e = api
            .run(&commands(&[
                "set server web/green_1 weight 256",
                "set server web/blue_1 weight 0",
            ]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("static LB algorithm")
                && e.contains("not sent: `set server web/blue_1 weight 0`"),
            "{e}"
        );
        assert_eq!(sent.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_reply_past_the_cap_is_an_error() {
        let (transport, _) = fake(|_| "x".repeat(MAX_REPLY + 1));
        let e = RuntimeApi::new(transport)
            .servers("web")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 1024 KiB"), "{e}");
        // At the cap, the reply is read (and is no `show stat`).
        let (transport, _) = fake(|_| "x".repeat(MAX_REPLY));
        let e = RuntimeApi::new(transport)
            .servers("web")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HAProxy refused `show stat web -1 -1`: \"xxx"),
            "{e}"
        );
    }

    /// `show info` to a socket that accepts and never answers (its backlog does), in an
    /// operation whose deadline is `deadline` away and whose stop fires after `stop_after`:
    /// how long it took, and its error.
    async fn a_hung_exchange_within(
        deadline: Duration,
        stop_after: Duration,
    ) -> (Duration, String) {
        let path = std::env::temp_dir().join(format!("immutable-hung-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let _listener = tokio::net::UnixListener::bind(&path).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let cancel = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(stop_after).await;
            cancel.cancel();
        });
        let started = tokio::time::Instant::now();
        let budget = budget::Budget::new(started + deadline, stop, "the resource's `timeouts`");
        let api = RuntimeApi::new(Transport::Local(path.clone()));
        let error = budget::within(budget, api.read("show info"))
            .await
            .unwrap_err();
        let _ = std::fs::remove_file(&path);
        (started.elapsed(), error.to_string())
    }

    #[tokio::test]
    async fn an_exchange_that_never_answers_ends_within_a_second_of_ctrl_c_or_at_the_deadline() {
        let (took, e) =
            a_hung_exchange_within(Duration::from_secs(3600), Duration::from_millis(200)).await;
        assert!(took < Duration::from_millis(1200), "{took:?}");
        assert!(
            e.starts_with(
                "interrupted while waiting for `show info` on HAProxy's Runtime API at unix:///"
            ),
            "{e}"
        );
        let (took, e) =
            a_hung_exchange_within(Duration::from_millis(300), Duration::from_secs(3600)).await;
        assert!(took < Duration::from_millis(1300), "{took:?}");
        assert!(
            e.starts_with(
                "the time the resource's `timeouts` allows ran out while waiting for `show info`"
            ),
            "{e}"
        );
    }

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
