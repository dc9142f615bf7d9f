// One SGD step of one parameter tensor on the device (torch.optim.SGD(lr, momentum,
// weight_decay, nesterov), no dampening, as src/optim/sgd.rs computes it), the gradient first
// scaled by the global-norm clip factor. The momentum buffer starts at zero, so the first step's
// buf = 0 * momentum + g = g, which is where PyTorch starts it. The momentum buffer is the device
// optimizer's first moment, m.
// W_hh also keeps its transposed copy, which the forward kernels read, in step.

struct Hyper {
    lr: f32,
    momentum: f32,
    scale: f32,         // min(1, max_norm / (||g|| + 1e-6)), or 1 without clipping
    weight_decay: f32,  // g += weight_decay * p
    nesterov: f32,      // 1: step g + momentum * buf; 0: step buf
    _pad2: f32,
    _pad3: f32,
    _pad4: f32,
}

// struct Tensor: shaders/optimizer_tensor.wgsl (prepended)

@group(0) @binding(0) var<uniform> h: Hyper;
@group(0) @binding(1) var<uniform> t: Tensor;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;    // (len): row-major (rows, cols)
@group(0) @binding(3) var<storage, read> grad: array<f32>;           // (len)
@group(0) @binding(4) var<storage, read_write> m: array<f32>;        // (len): momentum buffer
@group(0) @binding(5) var<storage, read_write> param_t: array<f32>;  // (cols, rows) when transposed

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * t.row + gid.x;
    if (i >= t.len) { return; }
    let g = grad[i] * h.scale + h.weight_decay * param[i];
    let b = h.momentum * m[i] + g;
    m[i] = b;
    let p = param[i] - h.lr * select(b, g + h.momentum * b, h.nesterov != 0.0);
    param[i] = p;
    if (t.transposed != 0u) {
        let rows = t.len / t.cols;
        param_t[(i % t.cols) * rows + i / t.cols] = p;
    }
}
