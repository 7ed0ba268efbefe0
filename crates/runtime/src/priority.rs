//! Scheduling priority for the threads that run challenge code.
//!
//! A validator's CPU goes first to consensus (votes, block checks, the network) and only then
//! to evaluations: an evaluation finishing a second later changes nothing, a vote arriving a
//! second later stalls a view for every validator. On Linux a thread has its own nice value,
//! so the threads that evaluate lower theirs once at start; children they start (the module
//! compiler) inherit it.

/// Raises the calling thread's nice value to `nice` (19 = lowest priority); a thread already
/// at or above it is left as it is.
/// Lowering priority needs no privilege; it cannot be raised again without one, so call this
/// only on threads that do nothing but low-priority work. On systems without per-thread nice
/// values it does nothing.
pub fn lower_this_thread(nice: u8) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let nice = libc::c_int::from(nice.min(19));
        // Already as low (a node started under `nice`): setting the value would raise it.
        if this_thread_nice().is_some_and(|now| now >= nice) {
            return Ok(());
        }
        // SAFETY: gettid and setpriority take and return plain integers; the thread id is our
        // own, so only this thread's priority changes.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    Ok(())
}

/// The calling thread's nice value (Linux; `None` elsewhere or when it cannot be read).
pub fn this_thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // getpriority may legitimately return -1, so errno is cleared and checked.
        // SAFETY: as above, integers only; errno is this thread's.
        unsafe {
            *libc::__errno_location() = 0;
            let tid = libc::gettid();
            let value = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            if value == -1 && *libc::__errno_location() != 0 {
                return None;
            }
            Some(value)
        }
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_keeps_its_nice_value_and_others_do_not_change() {
        let before = this_thread_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread(7).unwrap();
            this_thread_nice()
        })
        .join()
        .unwrap();
        if cfg!(target_os = "linux") {
            let base = before.unwrap();
            assert_eq!(lowered, Some(base.max(7)));
            // The caller's own priority is untouched: nice values are per thread on Linux.
            assert_eq!(this_thread_nice(), Some(base));
        }
    }
}
