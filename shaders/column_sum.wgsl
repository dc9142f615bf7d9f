// out (N) = sum over rows of A (M, N) [+ out]: bias gradients over all T*B positions.

struct Params { m: u32, n: u32, accumulate: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;          // (M, N)
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // (N)

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.n) { return; }
    var total = 0.0;
    for (var r = 0u; r < p.m; r++) { total += a[r * p.n + col]; }
    if (p.accumulate != 0u) { total += out[col]; }
    out[col] = total;
}
