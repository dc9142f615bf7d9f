// dL/dh_{t-1} (B, H) = dgates_t (B, G*H) · W_hh (G*H, H) [+ direct (B, H)], the second half of
// a backward step, for a tile of TU columns k x TB batch rows. As in step_tiled.wgsl, the
// summed range (r, over G*H gate rows) is cut into KS slices that run side by side and are
// added in workgroup memory; each W_hh element read serves TB rows (vec4 lanes).
// Invocation (u, q): column wg.x * TU + u, slice q; dispatch (ceil(H / TU), ceil(B / TB), 1).

@group(0) @binding(0) var<uniform> s: Step;
@group(0) @binding(1) var<storage, read> w_hh: array<f32>;            // (G*H, H)
@group(0) @binding(2) var<storage, read> hg: array<f32>;              // (T, B, G*H)
@group(0) @binding(3) var<storage, read> direct: array<f32>;          // (B, H), GRU only
@group(0) @binding(4) var<storage, read_write> dh_rec: array<f32>;    // (B, H)
@group(0) @binding(5) var<storage, read> lengths: array<u32>;         // (B): steps of each row

// TU, KS, TB: constants the host writes in front of this source.
var<workgroup> partial: array<vec4<f32>, KS * TU>;  // [KS][TU]: lane i = batch row b0 + i

@compute @workgroup_size(TU, KS, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let h = s.hidden;
    let gh = s.gate_rows;
    let u = lid.x;
    let q = lid.y;
    // Clamped column and rows: lanes past H or B compute a duplicate and store nothing.
    let k_load = min(wg.x * TU + u, h - 1u);
    let b0 = wg.y * TB;
    let last = s.batch - 1u;
    let row = s.t * s.batch;
    let g0 = (row + min(b0, last)) * gh;
    let g1 = (row + min(b0 + 1u, last)) * gh;
    let g2 = (row + min(b0 + 2u, last)) * gh;
    let g3 = (row + min(b0 + 3u, last)) * gh;
    let chunk = (gh + KS - 1u) / KS;
    let r_end = min(gh, (q + 1u) * chunk);
    var acc = vec4<f32>(0.0);
    for (var r = q * chunk; r < r_end; r++) {
        acc += w_hh[r * h + k_load] * vec4<f32>(hg[g0 + r], hg[g1 + r], hg[g2 + r], hg[g3 + r]);
    }
    partial[q * TU + u] = acc;
    workgroupBarrier();
    // Invocation (u, q < TB) finishes batch row b0 + q.
    let k = wg.x * TU + u;
    let b = b0 + q;
    // Past the row's end the step was a copy of the state: dh_rec carries on unchanged.
    if (q >= TB || k >= h || b >= s.batch || s.t >= lengths[b]) { return; }
    var sum = 0.0;
    for (var p = 0u; p < KS; p++) {
        sum += partial[p * TU + u][q];
    }
    if ((s.flags & STEP_ADD_DIRECT) != 0u) { sum += direct[b * h + k]; }
    dh_rec[b * h + k] = sum;
}
