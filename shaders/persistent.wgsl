// The persistent forward shared by the cell kernels (rnn, lstm, gru.wgsl), over their `load_w`
// and `update4`: one workgroup of PWG invocations per batch entry loops over all T steps of a
// direction, holding h_{t-1} and h_t of its row in workgroup memory (so H <= MAX_PERSISTENT_H).
// PWG (invocations per workgroup) and MAX_PERSISTENT_H: constants the host writes in front.
var<workgroup> h_rows: array<f32, 2u * MAX_PERSISTENT_H>;  // [2][MAX_PERSISTENT_H]: rows alternate by step parity

// Slots of step `step` (processing order) of a direction: (t, prev_slot, next_slot).
fn step_slots(step: u32) -> vec3<u32> {
    if ((s.flags & STEP_REVERSE) != 0u) {
        let t = s.seq_len - 1u - step;
        return vec3<u32>(t, t + 1u, t);
    }
    return vec3<u32>(step, step, step + 1u);
}

// Loads the h0 row of batch entry b into h_rows[0..H].
fn load_initial_row(b: u32, lid: u32) {
    let h0_slot = select(0u, s.seq_len, (s.flags & STEP_REVERSE) != 0u);
    for (var j = lid; j < s.hidden; j += PWG) {
        h_rows[j] = states[(h0_slot * s.batch + b) * s.hidden + j];
    }
    workgroupBarrier();
}

// Dispatch (1, B, 1) with the step uniform at offset 0: workgroup b runs every step of row b.
@compute @workgroup_size(PWG, 1, 1)
fn forward_persistent(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let h = s.hidden;
    let b = wg.y;
    load_initial_row(b, lid.x);
    for (var step = 0u; step < s.seq_len; step++) {
        let cur = (step % 2u) * MAX_PERSISTENT_H;
        let nxt = MAX_PERSISTENT_H - cur;
        let slots = step_slots(step);
        for (var j = lid.x; j < h; j += PWG) {
            var acc = vec4<f32>(0.0);
            for (var k = 0u; k < h; k++) {
                acc += h_rows[cur + k] * load_w(k, j);
            }
            h_rows[nxt + j] = update4(b, j, slots, acc);
        }
        workgroupBarrier();
    }
}
