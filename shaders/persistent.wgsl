// Shared by the persistent variants of the cell kernels (rnn, lstm, gru.wgsl), after their
// bindings: one workgroup per batch entry loops over all T steps of a direction.
// One workgroup of PWG invocations per batch entry loops over all T steps,
// holding h_{t-1} and h_t of its row in workgroup memory (so H <= MAX_PERSISTENT_H).
const PWG: u32 = 256u;
const MAX_PERSISTENT_H: u32 = 1024u;
var<workgroup> h_rows: array<f32, 2048>;  // [2][MAX_PERSISTENT_H]: rows alternate by step parity

// Slots of step `step` (processing order) of a direction: (t, prev_slot, next_slot).
fn step_slots(step: u32) -> vec3<u32> {
    if ((s.flags & 4u) != 0u) {
        let t = s.seq_len - 1u - step;
        return vec3<u32>(t, t + 1u, t);
    }
    return vec3<u32>(step, step, step + 1u);
}

// Loads the h0 row of batch entry b into h_rows[0..H].
fn load_initial_row(b: u32, lid: u32) {
    let h0_slot = select(0u, s.seq_len, (s.flags & 4u) != 0u);
    for (var j = lid; j < s.hidden; j += PWG) {
        h_rows[j] = states[(h0_slot * s.batch + b) * s.hidden + j];
    }
    workgroupBarrier();
}
