// sums[slot] = sum of grad[i]^2 over one gradient tensor: one workgroup per tensor, for the
// global L2 norm of gradient clipping (only these sums are read back).

// struct Tensor: shaders/optimizer_tensor.wgsl (prepended)

@group(0) @binding(0) var<uniform> t: Tensor;
@group(0) @binding(1) var<storage, read> grad: array<f32>;          // (len)
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;    // (tensors)

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < t.len; i += 256u) {
        let g = grad[i];
        acc += g * g;
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        sums[t.slot] = partial[0];
    }
}
