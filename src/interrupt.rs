//! Stopping cleanly: SIGINT (Ctrl-C), SIGTERM and SIGUSR1 (what clusters send before a time
//! limit) ask the work in progress to stop at its next safe point; a second signal stops at once.
//!
//! Work that can stop cleanly — the training loop, a sweep waiting on its trials — holds a
//! [`Graceful`] guard. While one is held, the first signal only sets a flag that the work polls
//! ([`requested`]): training finishes its step, saves a checkpoint and returns
//! [`Error::Interrupted`](crate::Error::Interrupted). Without a guard (decoding, the final
//! evaluation, the report), and on a second signal, the process exits at once with 130: every
//! file is written atomically, so the last checkpoint stays intact and the run resumes from it.
//!
//! Work that leaves something behind when it stops at once — the folder a run made for itself,
//! a Slurm job that should be requeued — registers an [`on_stop`] action, run on the signal's
//! way out: a signal that arrives while data is decoded still stops with 130 and a message.
//!
//! [`point`] is a test hook: `BRASA_INTERRUPT_AT=<where>:<n>:<signal>` makes the process send
//! itself `<signal>` (`int`, `term`, `usr1`, `kill`, or `int2`: SIGINT twice) when it reaches that point, so tests can
//! interrupt a run at chosen steps, in evaluation or while the report is written.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// The test hook's variable (see [`point`]).
pub const AT_ENV: &str = "BRASA_INTERRUPT_AT";

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static GRACEFUL: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
/// What to do before stopping at once, by registration number ([`on_stop`]).
type StopAction = Box<dyn Fn(&'static str) + Send>;
static ON_STOP: Mutex<Vec<(usize, StopAction)>> = Mutex::new(Vec::new());
static NEXT_ACTION: AtomicUsize = AtomicUsize::new(0);

/// Starts listening for the signals (once per process; a no-op where there are none).
pub fn install() {
    INSTALL.call_once(|| {
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
            match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1]) {
                Ok(mut signals) => {
                    std::thread::Builder::new()
                        .name("brasa-signals".into())
                        .spawn(move || {
                            for signal in signals.forever() {
                                received(signal);
                            }
                        })
                        .expect("a thread for signals");
                }
                Err(e) => eprintln!("warning: signals cannot be handled ({e}): Ctrl-C stops at once"),
            }
        }
    });
}

fn received(signal: i32) {
    let name = signal_name(signal);
    if REQUESTED.swap(true, Ordering::SeqCst) || GRACEFUL.load(Ordering::SeqCst) == 0 {
        eprintln!("\n{name}: stopping now (files are written whole: the last checkpoint, if any, is intact)");
        run_stop_actions(name);
        std::process::exit(crate::error::EXIT_INTERRUPTED.into());
    }
    SIGNAL.store(signal, Ordering::SeqCst);
    eprintln!("\n{name}: finishing the current step, then saving a checkpoint (send it again to stop at once)");
}

/// Runs the registered [`on_stop`] actions, the latest first (each once: the registry is emptied).
fn run_stop_actions(signal: &'static str) {
    let actions = match ON_STOP.lock() {
        Ok(mut actions) => std::mem::take(&mut *actions),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for (_, action) in actions.into_iter().rev() {
        action(signal);
    }
}

/// Registers `action` (given the signal's name) to run when a signal stops the process at once,
/// until the returned guard is dropped. For cleanup that a process exit would skip: it runs on
/// the signal thread while the interrupted work may still be going, so it must be safe beside it.
#[must_use = "the action is forgotten when the guard is dropped"]
pub fn on_stop(action: impl Fn(&'static str) + Send + 'static) -> StopGuard {
    install();
    let id = NEXT_ACTION.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut actions) = ON_STOP.lock() {
        actions.push((id, Box::new(action)));
    }
    StopGuard(id)
}

/// Keeps an [`on_stop`] action registered while it lives.
pub struct StopGuard(usize);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if let Ok(mut actions) = ON_STOP.lock() {
            actions.retain(|(id, _)| *id != self.0);
        }
    }
}

/// The signal that asked the work to stop, by name, once one has.
pub fn requested() -> Option<&'static str> {
    REQUESTED.load(Ordering::SeqCst).then(|| signal_name(SIGNAL.load(Ordering::SeqCst)))
}

fn signal_name(signal: i32) -> &'static str {
    #[cfg(unix)]
    if let Some(name) = signal_hook::low_level::signal_name(signal) {
        return name;
    }
    let _ = signal;
    "signal"
}

/// Sends the signal that asked this process to stop to process `pid` (a sweep's trial, which
/// runs in its own process group so that a terminal's Ctrl-C reaches the sweep alone).
pub fn forward(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory effects; a process already gone is not an error here
        unsafe {
            libc::kill(pid, SIGNAL.load(Ordering::SeqCst));
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Held by work that stops cleanly at a signal; without one, a signal stops the process at once.
pub struct Graceful(());

impl Graceful {
    pub fn new() -> Self {
        install();
        GRACEFUL.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Default for Graceful {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Graceful {
    fn drop(&mut self) {
        GRACEFUL.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The test hook: when `BRASA_INTERRUPT_AT` names this point (`<at>:<n>:<signal>`, `n` ignored
/// when the point has no number), the process sends itself the signal and, for a catchable one,
/// waits until it is seen, so the interruption lands exactly here.
pub fn point(at: &str, n: usize) {
    let Ok(spec) = std::env::var(AT_ENV) else { return };
    let mut parts = spec.split(':');
    let (Some(place), Some(number), Some(signal)) = (parts.next(), parts.next(), parts.next()) else { return };
    if place != at || number.parse::<usize>().ok() != Some(n) {
        return;
    }
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGKILL, SIGTERM, SIGUSR1};
        // `int2`: Ctrl-C twice, the second while the first is being honoured
        let twice = signal == "int2";
        let signal = match signal {
            "int" | "int2" => SIGINT,
            "term" => SIGTERM,
            "usr1" => SIGUSR1,
            "kill" => SIGKILL,
            _ => return,
        };
        let seen_before = REQUESTED.load(Ordering::SeqCst);
        // what `received` will do: exit at once when no guard is held or a signal came before
        let exits = seen_before || GRACEFUL.load(Ordering::SeqCst) == 0;
        if signal_hook::low_level::raise(signal).is_ok() {
            // the handler runs on its own thread: wait for it (it may also exit the process)
            let started = std::time::Instant::now();
            while REQUESTED.load(Ordering::SeqCst) == seen_before && started.elapsed().as_secs() < 10 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if exits && signal != SIGKILL {
                // the handler sets the flag before it exits: go no further than this point
                // meanwhile, or the work (a report, a status) may finish before the exit lands
                std::thread::sleep(std::time::Duration::from_secs(10));
            }
            if twice {
                let _ = signal_hook::low_level::raise(signal);
                std::thread::sleep(std::time::Duration::from_secs(10));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = signal;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stop_actions_run_latest_first_and_only_while_their_guard_lives() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = |tag: &'static str| {
            let seen = Arc::clone(&seen);
            move |signal: &'static str| seen.lock().unwrap().push(format!("{tag} {signal}"))
        };
        let first = on_stop(record("first"));
        let dropped = on_stop(record("dropped"));
        let _second = on_stop(record("second"));
        drop(dropped);
        run_stop_actions("SIGTERM");
        assert_eq!(*seen.lock().unwrap(), ["second SIGTERM", "first SIGTERM"]);
        // run once: the registry is empty afterwards, and a late guard's drop is harmless
        run_stop_actions("SIGINT");
        assert_eq!(seen.lock().unwrap().len(), 2);
        drop(first);
    }
}
