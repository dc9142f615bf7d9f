// out = a * mask, elementwise: dropout of a layer's output on its way up to the next layer, and
// of the gradient coming back down through the same mask.

struct Params { len: u32, row: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;           // (T, B, D*H)
@group(0) @binding(2) var<storage, read> mask: array<f32>;        // (T, B, D*H): 0 or 1/(1-p)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;   // (T, B, D*H)

// A 2-D grid: `row` invocations per grid row, so that T*B*D*H may pass 65535 workgroups.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.len) { return; }
    out[i] = a[i] * mask[i];
}
