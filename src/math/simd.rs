//! Runtime SIMD dispatch for the gate loops: a kernel is compiled a second time with AVX2 and
//! FMA enabled, and that copy runs where the CPU has them. The elementwise loops are written
//! as plain scalar code (`#[inline(always)]` down to the exp) so that the compiler vectorises
//! them in whichever copy it is building.

/// A piece of elementwise work whose `run` (and everything it calls) is `#[inline(always)]`,
/// so that it is inlined into the feature-enabled copy.
pub trait Kernel {
    fn run(self);
}

/// Runs `kernel` with the best instruction set this CPU has.
pub fn run<K: Kernel>(kernel: K) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the copy is compiled for.
        return unsafe { run_avx2_fma(kernel) };
    }
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2_fma<K: Kernel>(kernel: K) {
    kernel.run()
}
