//! How the harness runs the daemons it starts (moto, HAProxy, sshd), written once:
//!
//! * each runs in its own process group (so that a fixture can stop master and workers
//!   together) with `PR_SET_PDEATHSIG(SIGKILL)`, so that none outlives a test process that
//!   dies without unwinding;
//! * that signal follows the *thread* that spawned the child, so every daemon is spawned
//!   from one keeper thread that lives as long as the test process;
//! * each gets a temporary directory short enough for Unix socket paths, and loopback ports
//!   from [`free_port`].

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` in a process group of its own, killed when the test process exits.
pub fn spawn(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: the hook runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1); // the test process died before prctl took effect
            }
            Ok(())
        });
    }
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("daemon-keeper".into())
            // The sender lives in a static, so recv() never fails and this thread never returns.
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("cannot start the daemon-keeper thread");
        Mutex::new(tx)
    });
    let gone = || io::Error::other("the daemon-keeper thread is gone");
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap()
        .send((cmd, reply_tx))
        .map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

/// A new directory for one daemon, `<prefix>-<pid>-<n>-<random>`, short enough for Unix
/// socket paths in it (108 bytes).
pub fn temp_dir(prefix: &str) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    for _ in 0..16 {
        let dir = base.join(format!(
            "{prefix}-{}-{n}-{:06x}",
            std::process::id(),
            fastrand::u32(..0x100_0000)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no unused temporary directory name"))
}

/// A loopback port nobody listens on just now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
