//! A team of threads that runs the time steps of one recurrence together.
//!
//! Each thread (a party) owns a block of hidden units: it computes their rows of the step's
//! product with W_hh and their gate update, then waits at a barrier, after which every party
//! reads the whole new state. One barrier per step and no serial phase: the elementwise work
//! that a fork-join product leaves to one thread is split too.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ndarray::{ArrayView2, ShapeBuilder};

/// Fewest hidden units a party takes: below it a barrier per step costs more than it saves.
const MIN_UNITS_PER_PARTY: usize = 64;

/// Fewest multiply-adds a whole recurrence needs before a team is started: starting a thread
/// costs tens of microseconds, which a single step of one stream (sampling) would not repay.
const MIN_MACS_FOR_TEAM: usize = 1 << 22;

/// Spins at a barrier before yielding the core: a step takes tens of microseconds, so a spin
/// usually ends it, and yielding keeps an oversubscribed machine moving.
const SPINS_BEFORE_YIELD: u32 = 1 << 12;

#[cfg(test)]
thread_local! {
    /// Tests force a team size on small shapes, where the policy would pick one party.
    static FORCED_PARTIES: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs the next closure's recurrences with `parties` threads each (tests only).
#[cfg(test)]
pub fn with_forced_parties<R>(parties: usize, work: impl FnOnce() -> R) -> R {
    FORCED_PARTIES.with(|f| f.set(Some(parties)));
    let out = work();
    FORCED_PARTIES.with(|f| f.set(None));
    out
}

/// How many threads share the steps of one recurrence, and which units each owns.
#[derive(Clone, Copy, Debug)]
pub struct Team {
    parties: usize,
    hidden: usize,
}

impl Team {
    /// A team for a recurrence over `hidden` units whose W_hh products take `macs`
    /// multiply-adds in all: as many threads as rayon's current pool has (so `RAYON_NUM_THREADS`
    /// and `ThreadPool::install` bound it), each with enough units, and one thread for short work.
    pub fn for_recurrence(hidden: usize, macs: usize) -> Team {
        #[cfg(test)]
        if let Some(forced) = FORCED_PARTIES.with(|f| f.get()) {
            return Team {
                parties: forced.clamp(1, hidden.max(1)),
                hidden,
            };
        }
        let parties = if macs < MIN_MACS_FOR_TEAM {
            1
        } else {
            (hidden / MIN_UNITS_PER_PARTY).clamp(1, rayon::current_num_threads())
        };
        Team { parties, hidden }
    }

    /// The hidden units `party` owns: contiguous blocks whose sizes differ by at most one.
    pub fn units(&self, party: usize) -> Range<usize> {
        let (base, extra) = (self.hidden / self.parties, self.hidden % self.parties);
        let start = party * base + party.min(extra);
        start..start + base + usize::from(party < extra)
    }

    /// Runs `work(party, barrier)` on every party, this thread being party 0, and returns their
    /// results in party order. A panic in one party is raised in all (none waits forever).
    pub fn run<R: Send>(&self, work: impl Fn(usize, &StepBarrier) -> R + Sync) -> Vec<R> {
        let barrier = StepBarrier::new(self.parties);
        let guarded = |party: usize| {
            let _poison = PoisonOnPanic(&barrier);
            work(party, &barrier)
        };
        if self.parties == 1 {
            return vec![guarded(0)];
        }
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..self.parties)
                .map(|party| {
                    let guarded = &guarded;
                    scope.spawn(move || guarded(party))
                })
                .collect();
            let mut results = vec![guarded(0)];
            for handle in others {
                match handle.join() {
                    Ok(r) => results.push(r),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            results
        })
    }
}

/// A barrier for the parties of one team, reusable step after step.
#[derive(Debug)]
pub struct StepBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl StepBarrier {
    fn new(parties: usize) -> Self {
        StepBarrier {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Returns once every party has called `wait` as often as this one. Writes made before it
    /// are visible to every party after it.
    pub fn wait(&self) {
        if self.parties == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.store(generation + 1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.poisoned.load(Ordering::Relaxed),
                "another thread of the recurrence panicked"
            );
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Marks the barrier poisoned when its party unwinds, so the others stop waiting.
struct PoisonOnPanic<'a>(&'a StepBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

/// A buffer the parties of a team share: each writes only elements no other party reads or
/// writes until the next barrier.
///
/// That discipline is what makes the accessors sound, and the borrow checker cannot see it, so
/// they are `unsafe`: the caller promises that no other party touches the same elements between
/// the same two barriers (reads by several parties at once are fine).
pub struct Shared<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: sharing is sound under the access discipline the unsafe accessors require.
unsafe impl<T: Send + Sync> Sync for Shared<'_, T> {}
unsafe impl<T: Send + Sync> Send for Shared<'_, T> {}

impl<'a, T> Shared<'a, T> {
    pub fn new(buffer: &'a mut [T]) -> Self {
        Shared {
            ptr: buffer.as_mut_ptr(),
            len: buffer.len(),
            _borrow: PhantomData,
        }
    }

    /// # Safety
    /// No party writes `start..start + len` until the next barrier.
    pub unsafe fn slice(&self, start: usize, len: usize) -> &[T] {
        assert!(start + len <= self.len, "shared read out of bounds");
        // SAFETY: in bounds (checked); no concurrent writer (caller).
        unsafe { std::slice::from_raw_parts(self.ptr.add(start), len) }
    }

    /// # Safety
    /// No other party reads or writes `start..start + len` until the next barrier.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "shared write out of bounds");
        // SAFETY: in bounds (checked); this party alone touches the range (caller).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }

    /// A (rows, cols) view starting at `start` whose rows are `row_stride` apart.
    ///
    /// # Safety
    /// No party writes the view's elements until the next barrier.
    pub unsafe fn rows(
        &self,
        start: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> ArrayView2<'_, T> {
        assert_rows_in_bounds(start, rows, cols, row_stride, self.len);
        // SAFETY: every element of the view is in bounds (checked); no concurrent writer.
        unsafe {
            ArrayView2::from_shape_ptr((rows, cols).strides((row_stride, 1)), self.ptr.add(start))
        }
    }
}

fn assert_rows_in_bounds(start: usize, rows: usize, cols: usize, row_stride: usize, len: usize) {
    let end = if rows == 0 || cols == 0 {
        start
    } else {
        start + (rows - 1) * row_stride + cols
    };
    assert!(
        (rows <= 1 || cols <= row_stride) && end <= len,
        "shared view out of bounds or with overlapping rows"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_cover_the_hidden_size_in_balanced_blocks() {
        let team = Team {
            parties: 3,
            hidden: 11,
        };
        let blocks: Vec<_> = (0..3).map(|p| team.units(p)).collect();
        assert_eq!(blocks, vec![0..4, 4..8, 8..11]);
    }

    #[test]
    fn barrier_orders_the_writes_of_every_step() {
        let team = Team {
            parties: 3,
            hidden: 3,
        };
        let mut cells = vec![0usize; 3];
        let shared = Shared::new(&mut cells);
        let sums = team.run(|party, barrier| {
            let mut seen = Vec::new();
            for step in 1..=200 {
                // SAFETY: each party writes its own cell, and reads all only between barriers.
                unsafe { shared.slice_mut(party, 1)[0] = step };
                barrier.wait();
                seen.push(unsafe { shared.slice(0, 3) }.iter().sum::<usize>());
                barrier.wait();
            }
            seen
        });
        for seen in sums {
            assert_eq!(seen, (1..=200).map(|s| 3 * s).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_party_does_not_hang_the_others() {
        let team = Team {
            parties: 2,
            hidden: 2,
        };
        let result = std::panic::catch_unwind(|| {
            team.run(|party, barrier| {
                if party == 1 {
                    panic!("party 1 fails");
                }
                barrier.wait();
            })
        });
        assert!(result.is_err());
    }
}
