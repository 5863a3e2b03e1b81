//! `sip.realtime_priority`: the runtime's threads under SCHED_RR, as some telephony servers run
//! their signalling. A SIP message then waits for no other process's time slice: on a busy host
//! the scheduler otherwise holds a woken thread for milliseconds, most of a call's added setup
//! time in bench/RESULTS.md. The price, measured there too: more CPU per call (fewer datagrams
//! per wake-up) and every other process on the host preempted at each message. Off by default.
//!
//! Linux needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least the priority (the Debian package's
//! unit allows 10 with `LimitRTPRIO`). Without either the threads stay as they are and one
//! warning says why; the service runs either way. The kernel's RT throttling (by default 95 % of
//! each second) still leaves the rest of the host its share under a flood.

use std::sync::atomic::{AtomicBool, Ordering};

use thread_priority::{
    set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy, ThreadPriority,
    ThreadPriorityValue, ThreadSchedulePolicy,
};

/// The highest value `sip.realtime_priority` takes (the POSIX range is 1..=99; the top is left
/// to the kernel's own threads and watchdogs).
pub const MAX_PRIORITY: u8 = 90;

/// Puts the calling thread under SCHED_RR at `priority` (1..=[`MAX_PRIORITY`]); 0 does nothing.
pub fn apply_to_current_thread(priority: u8) -> Result<(), String> {
    if priority == 0 {
        return Ok(());
    }
    let value = ThreadPriorityValue::try_from(priority)?;
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::RoundRobin),
    )
    .map_err(|e| format!("{e:?}"))
}

/// [`apply_to_current_thread`] for a runtime's thread-start hook: the first failure is logged
/// once (every thread would fail the same way), naming the key.
pub fn on_thread_start(priority: u8) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = apply_to_current_thread(priority) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %e,
                "sip.realtime_priority = {priority}: SCHED_RR refused (needs CAP_SYS_NICE or \
                 LimitRTPRIO/ulimit -r >= {priority}); running at normal priority"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (policy, rt_priority) of the calling thread from /proc (fields 41 and 40 of `stat`).
    fn scheduling() -> (u32, u32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces: count from its closing parenthesis.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        (fields[38].parse().unwrap(), fields[37].parse().unwrap())
    }

    /// True when this process may use SCHED_RR: CAP_SYS_NICE (bit 23) in its effective set.
    fn may_use_realtime() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let caps = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap();
        u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << 23) != 0
    }

    #[test]
    fn a_priority_puts_the_thread_under_round_robin_or_says_why_not() {
        std::thread::spawn(|| {
            assert_eq!(scheduling(), (0, 0), "SCHED_OTHER to begin with");
            assert_eq!(apply_to_current_thread(0), Ok(()));
            assert_eq!(scheduling(), (0, 0), "0 leaves the thread alone");
            match apply_to_current_thread(7) {
                Ok(()) => assert_eq!(scheduling(), (2, 7), "SCHED_RR at 7"),
                Err(e) => {
                    assert!(!may_use_realtime(), "refused with CAP_SYS_NICE: {e}");
                    assert_eq!(scheduling(), (0, 0));
                }
            }
        })
        .join()
        .unwrap();
    }
}
