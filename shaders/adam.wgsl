// One Adam / AdamW step of one parameter tensor on the device (torch.optim.Adam / AdamW, as
// src/optim/adam.rs computes it), the gradient first scaled by the global-norm clip factor.
// W_hh also keeps its transposed copy, which the forward kernels read, in step.

struct Hyper {
    step_size: f32,   // lr / (1 - beta1^t)
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias2_sqrt: f32,  // sqrt(1 - beta2^t)
    decay: f32,       // 1 - lr * weight_decay (AdamW); 1 for Adam
    scale: f32,       // min(1, max_norm / (||g|| + 1e-6)), or 1 without clipping
    _pad: f32,
}

// struct Tensor: shaders/optimizer_tensor.wgsl (prepended)

@group(0) @binding(0) var<uniform> h: Hyper;
@group(0) @binding(1) var<uniform> t: Tensor;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;    // (len): row-major (rows, cols)
@group(0) @binding(3) var<storage, read> grad: array<f32>;           // (len)
@group(0) @binding(4) var<storage, read_write> m: array<f32>;        // (len): first moment
@group(0) @binding(5) var<storage, read_write> v: array<f32>;        // (len): second moment
@group(0) @binding(6) var<storage, read_write> param_t: array<f32>;  // (cols, rows) when transposed

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * t.row + gid.x;
    if (i >= t.len) { return; }
    let g = grad[i] * h.scale;
    let mi = h.beta1 * m[i] + (1.0 - h.beta1) * g;
    let vi = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / h.bias2_sqrt + h.eps;
    let p = param[i] * h.decay - h.step_size * mi / denom;
    param[i] = p;
    if (t.transposed != 0u) {
        let rows = t.len / t.cols;
        param_t[(i % t.cols) * rows + i / t.cols] = p;
    }
}
