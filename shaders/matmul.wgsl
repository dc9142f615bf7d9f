// C (M, N) = A (M, K) · B (K, N) [+ C] [+ bias_a (N)] [+ bias_b (N)], every operand addressed
// through an offset and row/column strides, so a transposed operand is just swapped strides.
// Each workgroup computes a 64x64 tile of C; each of its 16x16 invocations a 4x4 block, with
// 64x16 and 16x64 tiles of A and B staged in workgroup memory.

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
var<workgroup> a_tile: array<f32, 1024>;  // (TILE, KT)
var<workgroup> b_tile: array<f32, 1024>;  // (KT, TILE)

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let local = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        // Stage the tiles: 256 invocations load 4 elements of each.
        for (var e = 0u; e < 4u; e++) {
            let idx = local * 4u + e;
            let ar = idx / KT;  let ak = idx % KT;
            let gr = row0 + ar; let gk = k0 + ak;
            var av = 0.0;
            if (gr < p.m && gk < p.k) { av = a[p.a_off + gr * p.a_rs + gk * p.a_cs]; }
            a_tile[idx] = av;
            let bk = idx / TILE; let bc = idx % TILE;
            let gk2 = k0 + bk;  let gc = col0 + bc;
            var bv = 0.0;
            if (gk2 < p.k && gc < p.n) { bv = b[p.b_off + gk2 * p.b_rs + gc * p.b_cs]; }
            b_tile[idx] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) { av[i] = a_tile[(lid.y + 16u * i) * KT + kk]; }
            for (var j = 0u; j < 4u; j++) { bv[j] = b_tile[kk * TILE + lid.x + 16u * j]; }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]); }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y + 16u * i;
        if (r >= p.m) { continue; }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (col >= p.n) { continue; }
            var v = acc[i * 4u + j];
            if ((p.flags & 2u) != 0u) { v += bias_a[col]; }
            if ((p.flags & 4u) != 0u) { v += bias_b[col]; }
            let ci = p.c_off + r * p.c_rs + col;
            if ((p.flags & 1u) != 0u) { v += c[ci]; }
            c[ci] = v;
        }
    }
}
