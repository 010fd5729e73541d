//! CPU priority of background work: the snapshotter runs in the idle
//! scheduling class (or niced) so that the engine and its clients on the
//! same cores keep the CPU they need.
//!
//! `SCHED_IDLE` rather than nice 19: a niced task that is running is allowed
//! to finish its time slice when the engine wakes (EEVDF's run-to-parity),
//! so every engine wakeup can wait a slice, which showed in the engine's p99
//! (docs/engine.md); a `SCHED_IDLE` task is preempted at once by any normal
//! task that wakes, and still gets a small share of a busy CPU (weight 3
//! against 1024 at nice 0), so it is never starved outright.

use std::io;

use nix::errno::Errno;

/// Lowest priority `nice` accepts.
pub const NICE_MAX: i32 = 19;

/// Sets the nice value of the calling thread to `nice` (0..=19; higher is
/// lower priority). Threads created afterwards inherit it, so a program calls
/// this first, before its runtime starts. Lowering the priority needs no
/// privilege; raising it again may (EACCES without CAP_SYS_NICE).
pub fn set_nice(nice: i32) -> io::Result<()> {
    if !(0..=NICE_MAX).contains(&nice) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: setpriority takes no pointers. `which` and `who` are constant
    // (PRIO_PROCESS, 0 = the calling thread). (nix 0.29 has no wrapper.)
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves the calling thread to the `SCHED_IDLE` class; threads created
/// afterwards inherit it. Needs no privilege.
pub fn set_idle_class() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0
    // is the calling thread. (nix 0.29 has no wrapper.)
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when the calling thread is in the `SCHED_IDLE` class.
pub fn is_idle_class() -> io::Result<bool> {
    // SAFETY: no pointers; pid 0 is the calling thread.
    #[allow(unsafe_code)]
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(policy == libc::SCHED_IDLE)
}

/// The nice value of the calling thread.
pub fn nice() -> io::Result<i32> {
    // getpriority returns -1 both as a value and as an error: errno tells.
    Errno::clear();
    // SAFETY: as above, no pointers.
    #[allow(unsafe_code)]
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if v == -1 && Errno::last_raw() != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_is_set_on_the_calling_thread_and_bounds_are_checked() {
        // A thread of its own: the test harness's other threads keep theirs.
        std::thread::spawn(|| {
            let before = nice().unwrap();
            let target = (before + 3).min(NICE_MAX);
            set_nice(target).unwrap();
            assert_eq!(nice().unwrap(), target);
            // A thread started now inherits it.
            let child = std::thread::spawn(|| nice().unwrap()).join().unwrap();
            assert_eq!(child, target);
            for bad in [-1, NICE_MAX + 1] {
                let e = set_nice(bad).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad}");
            }
            assert_eq!(nice().unwrap(), target, "a refused value changed nothing");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_idle_class_is_set_on_the_calling_thread_and_inherited() {
        std::thread::spawn(|| {
            assert!(!is_idle_class().unwrap());
            set_idle_class().unwrap();
            assert!(is_idle_class().unwrap());
            let child = std::thread::spawn(|| is_idle_class().unwrap())
                .join()
                .unwrap();
            assert!(child);
        })
        .join()
        .unwrap();
        assert!(!is_idle_class().unwrap(), "other threads keep theirs");
    }
}
