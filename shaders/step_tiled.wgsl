// The per-step forward shared by the cell kernels (rnn, lstm, gru.wgsl), after their bindings:
// h_{t-1} W_hh^T for a tile of TU hidden units x TB batch rows, then the cell's update.
// The k range (index into h_{t-1}) is cut into KS slices that run side by side and are summed
// in workgroup memory: a step is a few hundred multiply-adds per output, and a single
// invocation walking all of k waits on one load after another. Each W_hh element is read once
// per workgroup and used for TB rows. Accumulators are vec4, one lane per gate (the cell's
// `load_w` leaves lanes past its gate count zero).
// Invocation (u, q): unit wg.x * TU + u, slice q; dispatch (ceil(H / TU), ceil(B / TB), 1).
// TU, KS, TB: constants the host writes in front of this source.
var<workgroup> partial: array<vec4<f32>, KS * TB * TU>;  // [KS][TB][TU]: per-slice sums

@compute @workgroup_size(TU, KS, 1)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let h = s.hidden;
    let u = lid.x;
    let q = lid.y;
    // Clamped unit and rows: lanes past H or B compute a duplicate and store nothing.
    let j_load = min(wg.x * TU + u, h - 1u);
    let b0 = wg.y * TB;
    let last = s.batch - 1u;
    let prev = s.prev_slot * s.batch;
    let r0 = (prev + min(b0, last)) * h;
    let r1 = (prev + min(b0 + 1u, last)) * h;
    let r2 = (prev + min(b0 + 2u, last)) * h;
    let r3 = (prev + min(b0 + 3u, last)) * h;
    let chunk = (h + KS - 1u) / KS;
    let k_end = min(h, (q + 1u) * chunk);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var k = q * chunk; k < k_end; k++) {
        let w = load_w(k, j_load);
        a0 += states[r0 + k] * w;
        a1 += states[r1 + k] * w;
        a2 += states[r2 + k] * w;
        a3 += states[r3 + k] * w;
    }
    let at = q * TB * TU + u;
    partial[at] = a0;
    partial[at + TU] = a1;
    partial[at + 2u * TU] = a2;
    partial[at + 3u * TU] = a3;
    workgroupBarrier();
    // Invocation (u, q < TB) finishes batch row b0 + q.
    let j = wg.x * TU + u;
    let b = b0 + q;
    if (q >= TB || j >= h || b >= s.batch) { return; }
    var acc = vec4<f32>(0.0);
    for (var p = 0u; p < KS; p++) {
        acc += partial[(p * TB + q) * TU + u];
    }
    update4(b, j, vec3<u32>(s.t, s.prev_slot, s.next_slot), acc);
}
