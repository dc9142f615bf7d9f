// C (M, N) = A (M, K) · B (K, N) [+ C] [+ bias_a (N)] [+ bias_b (N)], every operand addressed
// through an offset and row/column strides, so a transposed operand is just swapped strides.
// Each workgroup computes a 128x64 tile of C; each of its 16x16 invocations an 8x4 block (rows
// 8 lid.y .. 8 lid.y + 7, columns 4 lid.x .. 4 lid.x + 3) held in eight vec4 accumulators, with
// 128x16 and 16x64 tiles of A and B staged in workgroup memory. Per step of the inner loop an
// invocation reads three vec4 from workgroup memory for 32 multiply-adds.

struct Params {
    m: u32, n: u32, k: u32,
    a_off: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_rs: u32,
    // MATMUL_ACCUMULATE: add the old C; MATMUL_BIAS_A / _B: add bias_a / bias_b
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// weight_t and act_t are f32, or f16 in the f16 inference variant (A: activations, B: weights).
@group(0) @binding(1) var<storage, read> a: array<act_t>;               // (M, K) strided
@group(0) @binding(2) var<storage, read> b: array<weight_t>;            // (K, N) strided
@group(0) @binding(3) var<storage, read_write> c: array<act_t>;         // (M, N), row stride c_rs
@group(0) @binding(4) var<storage, read> bias_a: array<f32>;            // (N)
@group(0) @binding(5) var<storage, read> bias_b: array<f32>;            // (N)

// TM, TN (the tile of C) and KT (its k step): constants the host writes in front of this source.
var<workgroup> a_tile: array<vec4<f32>, 512>;   // (KT, TM / 4): A transposed, 4 rows a vec4
var<workgroup> b_tile: array<vec4<f32>, 256>;   // (KT, TN / 4)

fn load_a(r: u32, k: u32) -> f32 {
    if (r < p.m && k < p.k) { return f32(a[p.a_off + r * p.a_rs + k * p.a_cs]); }
    return 0.0;
}

fn load_b(k: u32, col: u32) -> f32 {
    if (k < p.k && col < p.n) { return f32(b[p.b_off + k * p.b_rs + col * p.b_cs]); }
    return 0.0;
}

fn store(r: u32, col: u32, value: f32) {
    if (r >= p.m || col >= p.n) { return; }
    var v = value;
    if ((p.flags & MATMUL_BIAS_A) != 0u) { v += bias_a[col]; }
    if ((p.flags & MATMUL_BIAS_B) != 0u) { v += bias_b[col]; }
    let ci = p.c_off + r * p.c_rs + col;
    if ((p.flags & MATMUL_ACCUMULATE) != 0u) { v += f32(c[ci]); }
    c[ci] = act_t(v);
}

fn store_row(r: u32, col: u32, v: vec4<f32>) {
    store(r, col, v.x);
    store(r, col + 1u, v.y);
    store(r, col + 2u, v.z);
    store(r, col + 3u, v.w);
}

// Stages a_tile[k][g] = A rows 4g .. 4g + 3 (from row0) at column k0 + k.
fn stage_a(row0: u32, k0: u32, k: u32, g: u32) {
    let r = row0 + 4u * g;
    let kk = k0 + k;
    a_tile[k * 32u + g] = vec4<f32>(load_a(r, kk), load_a(r + 1u, kk), load_a(r + 2u, kk), load_a(r + 3u, kk));
}

// Stages b_tile[k][g] = B columns 4g .. 4g + 3 (from col0) at row k0 + k.
fn stage_b(col0: u32, k0: u32, k: u32, g: u32) {
    let col = col0 + 4u * g;
    let kk = k0 + k;
    b_tile[k * 16u + g] = vec4<f32>(load_b(kk, col), load_b(kk, col + 1u), load_b(kk, col + 2u), load_b(kk, col + 3u));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let local = lid.y * 16u + lid.x;
    // Neighbouring invocations stage neighbouring addresses: along k where the operand's rows
    // are contiguous (column stride 1), else along rows / columns.
    let a_along_k = p.a_cs == 1u;
    let b_along_k = p.b_cs != 1u;
    // Indexed with constants only, so that it stays in registers.
    var acc = array<vec4<f32>, 8>();

    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        // A: 16 x 32 vec4, two per invocation; B: 16 x 16 vec4, one per invocation.
        for (var half = 0u; half < 2u; half++) {
            let i = local + 256u * half;
            if (a_along_k) { stage_a(row0, k0, i % 16u, i / 16u); } else { stage_a(row0, k0, i / 32u, i % 32u); }
        }
        if (b_along_k) { stage_b(col0, k0, local % 16u, local / 16u); } else { stage_b(col0, k0, local / 16u, local % 16u); }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let bv = b_tile[kk * 16u + lid.x];
            let lo = a_tile[kk * 32u + 2u * lid.y];
            let hi = a_tile[kk * 32u + 2u * lid.y + 1u];
            acc[0] += lo.x * bv;
            acc[1] += lo.y * bv;
            acc[2] += lo.z * bv;
            acc[3] += lo.w * bv;
            acc[4] += hi.x * bv;
            acc[5] += hi.y * bv;
            acc[6] += hi.z * bv;
            acc[7] += hi.w * bv;
        }
        workgroupBarrier();
    }

    let col = col0 + lid.x * 4u;
    let row = row0 + 8u * lid.y;
    store_row(row, col, acc[0]);
    store_row(row + 1u, col, acc[1]);
    store_row(row + 2u, col, acc[2]);
    store_row(row + 3u, col, acc[3]);
    store_row(row + 4u, col, acc[4]);
    store_row(row + 5u, col, acc[5]);
    store_row(row + 6u, col, acc[6]);
    store_row(row + 7u, col, acc[7]);
}
