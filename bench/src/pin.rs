//! Core pinning: the server on one core, the bench on the other, so each gets a whole
//! core and the figures do not depend on how the scheduler happens to mix them.

use anyhow::Context;
use nix::{
    sched::{CpuSet, sched_setaffinity},
    unistd::Pid,
};

/// Which core runs what, when pinned.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub server_core: usize,
    pub bench_core: usize,
}

/// Pins the calling thread to `core`. Called before any other thread exists, so the
/// whole process ends up there: threads inherit the mask of the thread that starts them.
pub fn current_process_to(core: usize) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    set.set(core)
        .with_context(|| format!("core {core} is out of range"))?;
    // Pid 0 is the calling thread.
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("cannot pin the bench to core {core}"))?;
    Ok(())
}

/// Pins every thread of another process `pid` to `core` (its children started later
/// inherit the mask).
pub fn process_to(pid: u32, core: usize) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    set.set(core)
        .with_context(|| format!("core {core} is out of range"))?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("no process {pid}"))?;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        sched_setaffinity(Pid::from_raw(tid), &set)
            .with_context(|| format!("cannot pin thread {tid} of {pid} to core {core}"))?;
    }
    Ok(())
}
