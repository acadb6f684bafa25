//! Where the harness spawns the daemons it runs (moto, HAProxy, sshd): a thread that lives
//! as long as the test process. A child spawned with `PR_SET_PDEATHSIG` is killed when the
//! thread that spawned it ends, not the process; spawning every daemon from this one
//! thread makes that signal fire only when the whole test process exits, so no daemon
//! outlives a test process that dies without unwinding.

use std::io;
use std::process::{Child, Command};
use std::sync::{mpsc, Mutex, OnceLock};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from the process-long keeper thread.
pub fn spawn(cmd: Command) -> io::Result<Child> {
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
