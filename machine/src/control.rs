//! Starting, pausing, resetting and stopping every vCPU thread together.
//!
//! The control loop flips the shared state and kicks the vCPUs; each vCPU
//! thread checks the state between runs and parks while paused, so
//! `pause_all` returns only once every vCPU has really stopped.

use std::sync::{Arc, Condvar, Mutex};

use cpu::VcpuKick;

#[derive(Debug, Default)]
struct State {
    run: bool,
    exit: bool,
    /// Incremented by every machine reset; vCPUs reload their boot state
    /// when they see a new generation.
    generation: u64,
    /// vCPUs currently parked (paused or not started).
    parked: usize,
}

/// What a vCPU thread should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Keep running guest code; `generation` is the current reset count.
    Run {
        /// Reset generation.
        generation: u64,
    },
    /// Leave the thread.
    Exit,
}

/// Shared between the control loop and the vCPU threads.
pub struct VcpuControl {
    state: Mutex<State>,
    cond: Condvar,
    kickers: Mutex<Vec<Arc<dyn VcpuKick>>>,
    count: usize,
}

impl std::fmt::Debug for VcpuControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuControl")
            .field("state", &self.state)
            .field("count", &self.count)
            .finish()
    }
}

impl VcpuControl {
    /// Control for `count` vCPUs, initially paused.
    pub fn new(count: usize) -> Self {
        VcpuControl {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            kickers: Mutex::new(Vec::new()),
            count,
        }
    }

    /// Register a vCPU's kicker.
    pub fn add_kicker(&self, k: Arc<dyn VcpuKick>) {
        if let Ok(mut v) = self.kickers.lock() {
            v.push(k);
        }
    }

    /// Kick every vCPU out of guest mode.
    pub fn kick_all(&self) {
        if let Ok(v) = self.kickers.lock() {
            for k in v.iter() {
                k.kick();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by a vCPU thread between runs: returns at once while running,
    /// parks while paused.
    pub fn checkpoint(&self) -> Directive {
        let mut s = self.lock();
        if s.run && !s.exit {
            return Directive::Run {
                generation: s.generation,
            };
        }
        s.parked += 1;
        self.cond.notify_all();
        while !s.run && !s.exit {
            s = self.cond.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.parked -= 1;
        if s.exit {
            Directive::Exit
        } else {
            Directive::Run {
                generation: s.generation,
            }
        }
    }

    /// True if vCPUs should stop running guest code now (fast check).
    pub fn should_stop(&self) -> bool {
        let s = self.lock();
        !s.run || s.exit
    }

    /// Stop every vCPU and wait until all are parked.
    pub fn pause_all(&self) {
        let mut s = self.lock();
        s.run = false;
        self.cond.notify_all();
        drop(s);
        self.kick_all();
        let mut s = self.lock();
        while s.parked < self.count && !s.exit {
            let (g, _) = self
                .cond
                .wait_timeout(s, std::time::Duration::from_millis(10))
                .unwrap_or_else(|p| p.into_inner());
            s = g;
            if s.parked < self.count {
                drop(s);
                self.kick_all();
                s = self.lock();
            }
        }
    }

    /// Let every vCPU run.
    pub fn resume_all(&self) {
        let mut s = self.lock();
        s.run = true;
        self.cond.notify_all();
    }

    /// Start a new reset generation (call while paused).
    pub fn new_generation(&self) -> u64 {
        let mut s = self.lock();
        s.generation += 1;
        s.generation
    }

    /// Tell every vCPU thread to leave.
    pub fn exit_all(&self) {
        let mut s = self.lock();
        s.exit = true;
        self.cond.notify_all();
        drop(s);
        self.kick_all();
    }

    /// Whether the vCPUs are running.
    pub fn running(&self) -> bool {
        let s = self.lock();
        s.run && !s.exit
    }
}

impl VcpuControl {
    /// Block until the control loop pauses the vCPUs or ends the machine
    /// (a vCPU that reported a reset must not run on meanwhile).
    pub fn wait_until_paused_or_exit(&self) {
        let mut s = self.lock();
        while s.run && !s.exit {
            let (g, _) = self
                .cond
                .wait_timeout(s, std::time::Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner());
            s = g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn pause_waits_for_every_vcpu_and_resume_releases_them() {
        let ctl = Arc::new(VcpuControl::new(2));
        let steps = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let ctl = ctl.clone();
                let steps = steps.clone();
                std::thread::spawn(move || loop {
                    match ctl.checkpoint() {
                        Directive::Exit => break,
                        Directive::Run { .. } => {
                            steps.fetch_add(1, Ordering::SeqCst);
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        ctl.resume_all();
        while steps.load(Ordering::SeqCst) < 100 {
            std::thread::yield_now();
        }
        ctl.pause_all();
        let frozen = steps.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            steps.load(Ordering::SeqCst),
            frozen,
            "a vCPU ran while paused"
        );
        ctl.resume_all();
        while steps.load(Ordering::SeqCst) < frozen + 100 {
            std::thread::yield_now();
        }
        ctl.exit_all();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn generation_advances() {
        let ctl = VcpuControl::new(0);
        assert_eq!(ctl.new_generation(), 1);
        ctl.resume_all();
        assert_eq!(ctl.checkpoint(), Directive::Run { generation: 1 });
    }
}
