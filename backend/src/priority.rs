//! Thread priorities: the MP's request path before the site server's bookkeeping.
//!
//! In the product the MP answers clients while StateSys, on the site server, works through its
//! inbox at its own pace: a Report is acknowledged once the MP has it on disk, and whatever
//! StateSys does later (applying, checkpointing, compacting, summarizing) is not the client's
//! wait. Co-located in one process on a few cores, the kernel's fair scheduler would give a
//! compactor busy for a second the same share of a core as the relay's workers, and every client
//! would wait on it. So the site server's threads run at a lower priority (a higher nice value):
//! they get every cycle the MP leaves, and none it needs. They still have what the MP does not
//! use, so they keep up under any load the MP itself can carry; beyond it, StateSys falls behind
//! and reads the backlog from its inbox, as the product's does.

use std::io;

use crate::logs::{ComponentLog, Severity};

/// The nice value of the site server's threads by default (`backend serve --background-nice`):
/// the lowest there is, where a thread weighs about a seventieth of one at 0 (the kernel's
/// weights: 1024 against 15). At 10 (weight 110) a compaction sharing the relay's core still
/// held clients for 46-154 ms at 80 % of one core's capacity; at 19, 20-39 ms, with StateSys
/// keeping up (`results/bench/session15-2026-12-03.md`).
pub const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread's priority to nice `nice` (at most 19); a thread already at that
/// or lower is left as it is (so is every thread for 0). Threads it starts inherit it. Raising
/// a nice value needs no privilege; where the kernel refuses anyway, the caller is told.
pub fn lower_this_thread(nice: i32) -> io::Result<()> {
    let nice = nice.min(19);
    if nice <= 0 || this_thread()? >= nice {
        return Ok(());
    }
    // On Linux, PRIO_PROCESS with a thread's id sets that thread alone.
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice).map_err(io::Error::from)
}

/// [`lower_this_thread`] for `who` (StateSys, the summarizers); a refusal is a warning in `log`,
/// and the thread goes on at the MP's priority.
pub fn lower_this_thread_or_warn(nice: i32, log: &ComponentLog, who: &str) {
    if let Err(e) = lower_this_thread(nice) {
        log.log(Severity::Warning, &format!("{who} keep the MP's priority (nice {nice} refused: {e})"));
    }
}

/// The calling thread's nice value.
pub fn this_thread() -> io::Result<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_and_the_threads_it_starts_run_at_the_new_nice_the_others_do_not() {
        let before = this_thread().unwrap();
        let lowered = (before + 5).min(19);
        let (mine, child) = std::thread::spawn(move || {
            lower_this_thread(lowered).unwrap();
            let child = std::thread::spawn(|| this_thread().unwrap()).join().unwrap();
            (this_thread().unwrap(), child)
        })
        .join()
        .unwrap();
        assert_eq!((mine, child), (lowered, lowered));
        assert_eq!(this_thread().unwrap(), before, "the spawning thread is untouched");
        // 0, or a value below the thread's, leaves it as it is.
        let same = std::thread::spawn(move || {
            lower_this_thread(0).unwrap();
            let at_zero = this_thread().unwrap();
            lower_this_thread(lowered).unwrap();
            lower_this_thread(before).unwrap();
            (at_zero, this_thread().unwrap())
        });
        assert_eq!(same.join().unwrap(), (before, lowered));
    }
}
