// Shared by the recurrent kernels: the per-step parameters and overflow-safe activations.

// One time step of one direction of one layer; one of these per step, 256 bytes apart in a
// uniform buffer, picked with a dynamic offset.
struct Step {
    batch: u32,
    hidden: u32,
    t: u32,          // time index of this step
    prev_slot: u32,  // state slot read (see the host's time-indexed state layout)
    next_slot: u32,  // state slot written
    out_col: u32,    // first column of this direction in the layer output (dir * H)
    out_width: u32,  // D * H
    flags: u32,      // STEP_RELU (RNN), STEP_ADD_DIRECT (GRU hidden backward), STEP_REVERSE
    gate_rows: u32,  // G * H
    seq_len: u32,    // T, for the persistent kernels that loop over every step
    _pad1: u32,
    _pad2: u32,
}

fn sigmoid(x: f32) -> f32 {
    // exp(-x) overflows to +inf for very negative x, and 1 / inf = 0: still exact.
    return 1.0 / (1.0 + exp(-x));
}

fn tanh_safe(x: f32) -> f32 {
    // Built-in tanh may overflow to NaN for large |x| on some drivers; e = exp(-2|x|) <= 1 cannot.
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}
