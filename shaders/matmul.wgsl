// C (M, N) = A (M, K) · B (K, N) [+ C] [+ bias_a (N)] [+ bias_b (N)], every operand addressed
// through an offset and row/column strides, so a transposed operand is just swapped strides.
// Each workgroup computes a 64x64 tile of C; each of its 16x16 invocations a 4x4 block (rows
// lid.y + 16 i, columns 4 lid.x .. 4 lid.x + 3) held in four vec4 accumulators, with 64x16 and
// 16x64 tiles of A and B staged in workgroup memory.

struct Params {
    m: u32, n: u32, k: u32,
    a_off: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_rs: u32,
    // bit 0: add the old C; bit 1: add bias_a; bit 2: add bias_b
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // (M, K) strided
@group(0) @binding(2) var<storage, read> b: array<f32>;        // (K, N) strided
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // (M, N), row stride c_rs
@group(0) @binding(4) var<storage, read> bias_a: array<f32>;   // (N)
@group(0) @binding(5) var<storage, read> bias_b: array<f32>;   // (N)

const TILE: u32 = 64u;
const KT: u32 = 16u;
var<workgroup> a_tile: array<f32, 1024>;        // (TILE, KT)
var<workgroup> b_tile: array<vec4<f32>, 256>;   // (KT, TILE / 4)

fn load_a(r: u32, k: u32) -> f32 {
    if (r < p.m && k < p.k) { return a[p.a_off + r * p.a_rs + k * p.a_cs]; }
    return 0.0;
}

fn load_b(k: u32, col: u32) -> f32 {
    if (k < p.k && col < p.n) { return b[p.b_off + k * p.b_rs + col * p.b_cs]; }
    return 0.0;
}

fn store(r: u32, col: u32, value: f32) {
    if (r >= p.m || col >= p.n) { return; }
    var v = value;
    if ((p.flags & 2u) != 0u) { v += bias_a[col]; }
    if ((p.flags & 4u) != 0u) { v += bias_b[col]; }
    let ci = p.c_off + r * p.c_rs + col;
    if ((p.flags & 1u) != 0u) { v += c[ci]; }
    c[ci] = v;
}

fn store_row(r: u32, col: u32, v: vec4<f32>) {
    store(r, col, v.x);
    store(r, col + 1u, v.y);
    store(r, col + 2u, v.z);
    store(r, col + 3u, v.w);
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let local = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // This invocation stages a_tile[4 local .. 4 local + 3] and b_tile[local].
    let ar = local / 4u;
    let ak = (local % 4u) * 4u;
    let bk = local / 16u;
    let bc = col0 + (local % 16u) * 4u;

    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        let gr = row0 + ar;
        a_tile[local * 4u] = load_a(gr, k0 + ak);
        a_tile[local * 4u + 1u] = load_a(gr, k0 + ak + 1u);
        a_tile[local * 4u + 2u] = load_a(gr, k0 + ak + 2u);
        a_tile[local * 4u + 3u] = load_a(gr, k0 + ak + 3u);
        let gk = k0 + bk;
        b_tile[local] = vec4<f32>(load_b(gk, bc), load_b(gk, bc + 1u), load_b(gk, bc + 2u), load_b(gk, bc + 3u));
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let bv = b_tile[kk * 16u + lid.x];
            acc0 += a_tile[lid.y * KT + kk] * bv;
            acc1 += a_tile[(lid.y + 16u) * KT + kk] * bv;
            acc2 += a_tile[(lid.y + 32u) * KT + kk] * bv;
            acc3 += a_tile[(lid.y + 48u) * KT + kk] * bv;
        }
        workgroupBarrier();
    }

    let col = col0 + lid.x * 4u;
    store_row(row0 + lid.y, col, acc0);
    store_row(row0 + lid.y + 16u, col, acc1);
    store_row(row0 + lid.y + 32u, col, acc2);
    store_row(row0 + lid.y + 48u, col, acc3);
}
