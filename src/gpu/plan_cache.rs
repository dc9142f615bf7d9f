//! The plans of one GPU model, reused per (T, B) shape and leased: a training tape or a
//! stream holds its plan (its activation and state buffers) until it is dropped, so another
//! forward of the same shape gets another plan instead of overwriting what the tape needs.
//! Plans no one holds are kept for reuse up to a bound; the least recently used go first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::plan::Plan;
use crate::error::{Result, RnnError};

/// Plans kept for reuse when no tape or stream holds them: a model cycling through a few
/// shapes reuses theirs, one that sees many shapes keeps only this many.
pub const DEFAULT_PLAN_BOUND: usize = 8;

/// A plan held by a tape or a stream: not reused or freed while this lives. Dropping it
/// (anywhere, with no lock taken) hands the plan back.
#[derive(Debug)]
pub struct PlanLease {
    id: u64,
    released: Arc<AtomicBool>,
}

impl Drop for PlanLease {
    fn drop(&mut self) {
        self.released.store(true, Ordering::Release);
    }
}

struct Entry {
    id: u64,
    /// (T, B)
    shape: (usize, usize),
    plan: Plan,
    /// Set while a tape or stream holds the plan; its flag turns when that lease is dropped.
    lease: Option<Arc<AtomicBool>>,
    last_used: u64,
}

impl Entry {
    fn is_free(&self) -> bool {
        self.lease
            .as_ref()
            .is_none_or(|released| released.load(Ordering::Acquire))
    }
}

pub(super) struct PlanCache {
    entries: Vec<Entry>,
    clock: u64,
    next_id: u64,
    bound: usize,
}

impl PlanCache {
    pub fn new() -> Self {
        PlanCache {
            entries: Vec::new(),
            clock: 0,
            next_id: 0,
            bound: DEFAULT_PLAN_BOUND,
        }
    }

    /// Runs `f` on a free plan of `shape` (built by `build` when there is none); with `lease`,
    /// the plan is held for the returned lease afterwards.
    pub fn with_free<R>(
        &mut self,
        shape: (usize, usize),
        lease: bool,
        build: impl FnOnce() -> Result<Plan>,
        f: impl FnOnce(&mut Plan) -> Result<R>,
    ) -> Result<(R, Option<PlanLease>)> {
        self.clock += 1;
        let at = match self
            .entries
            .iter()
            .position(|e| e.shape == shape && e.is_free())
        {
            Some(at) => at,
            None => {
                // Room first: the plans no one holds past the bound go before a new one is made.
                self.evict(self.bound.saturating_sub(1));
                let plan = build()?;
                self.next_id += 1;
                self.entries.push(Entry {
                    id: self.next_id,
                    shape,
                    plan,
                    lease: None,
                    last_used: 0,
                });
                self.entries.len() - 1
            }
        };
        let entry = &mut self.entries[at];
        entry.lease = None;
        entry.last_used = self.clock;
        let result = f(&mut entry.plan)?;
        let lease = lease.then(|| {
            let released = Arc::new(AtomicBool::new(false));
            entry.lease = Some(released.clone());
            PlanLease {
                id: entry.id,
                released,
            }
        });
        self.evict(self.bound);
        Ok((result, lease))
    }

    /// Runs `f` on the plan `lease` holds.
    pub fn with_leased<R>(
        &mut self,
        lease: &PlanLease,
        f: impl FnOnce(&mut Plan) -> Result<R>,
    ) -> Result<R> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.id == lease.id)
            .ok_or_else(|| RnnError::Gpu("a tape or stream of another GPU model".into()))?;
        entry.last_used = clock;
        f(&mut entry.plan)
    }

    /// Frees the least recently used plans that no one holds until at most `keep` are left.
    fn evict(&mut self, keep: usize) {
        loop {
            let free: Vec<usize> = (0..self.entries.len())
                .filter(|&i| self.entries[i].is_free())
                .collect();
            if free.len() <= keep {
                return;
            }
            let oldest = free
                .into_iter()
                .min_by_key(|&i| self.entries[i].last_used)
                .expect("more than keep >= 0");
            self.entries.swap_remove(oldest);
        }
    }

    /// Frees every plan no one holds (their kernels are to change).
    pub fn clear_free(&mut self) {
        self.entries.retain(|e| !e.is_free());
    }

    /// At most `bound` plans are kept for reuse (at least one).
    pub fn set_bound(&mut self, bound: usize) {
        self.bound = bound.max(1);
        self.evict(self.bound);
    }

    /// (plans in all, plans held by a tape or stream).
    pub fn counts(&self) -> (usize, usize) {
        let held = self.entries.iter().filter(|e| !e.is_free()).count();
        (self.entries.len(), held)
    }
}
