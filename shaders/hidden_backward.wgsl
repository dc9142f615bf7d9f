// dL/dh_{t-1} (B, H) = dgates_t (B, G*H) · W_hh (G*H, H) [+ direct (B, H)], the second half of
// a backward step. Invocation (k, b); dispatch (ceil(H / 64), B, 1).

@group(0) @binding(0) var<uniform> s: Step;
@group(0) @binding(1) var<storage, read> w_hh: array<f32>;            // (G*H, H)
@group(0) @binding(2) var<storage, read> hg: array<f32>;              // (T, B, G*H)
@group(0) @binding(3) var<storage, read> direct: array<f32>;          // (B, H), GRU only
@group(0) @binding(4) var<storage, read_write> dh_rec: array<f32>;    // (B, H)

var<workgroup> g_tile: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let h = s.hidden;
    let gh = s.gate_rows;
    let b = wg.y;
    let k = wg.x * 64u + lid.x;
    let in_range = k < h;
    let row = (s.t * s.batch + b) * gh;
    var acc = 0.0;
    for (var r0 = 0u; r0 < gh; r0 += 64u) {
        let r = r0 + lid.x;
        g_tile[lid.x] = select(0.0, hg[row + r], r < gh);
        workgroupBarrier();
        if (in_range) {
            let n = min(64u, gh - r0);
            for (var rr = 0u; rr < n; rr++) {
                acc = fma(g_tile[rr], w_hh[(r0 + rr) * h + k], acc);
            }
        }
        workgroupBarrier();
    }
    if (!in_range) { return; }
    if ((s.flags & 2u) != 0u) { acc += direct[b * h + k]; }
    dh_rec[b * h + k] = acc;
}
