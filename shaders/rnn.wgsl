// Elman RNN (tanh or relu): the fused recurrent step and the gate backward of one time step.
// The forward kernels are step_tiled.wgsl's `forward` and persistent.wgsl's `forward_persistent`
// over this file's `load_w` and `update4`;
// `backward_gates`: invocation (j, b), hidden unit j of batch entry b, dispatch (ceil(H / 64), B, 1).

// weight_t / act_t: f32, or f16 in the f16 inference variant (states and cells stay f32).
@group(0) @binding(0) var<uniform> s: Step;
@group(0) @binding(1) var<storage, read> w_hh_t: array<weight_t>;       // (H, H): W_hh transposed
@group(0) @binding(2) var<storage, read_write> gates: array<act_t>;     // (T, B, H)
@group(0) @binding(3) var<storage, read_write> states: array<f32>;      // (T+1, B, H)
@group(0) @binding(4) var<storage, read_write> output: array<act_t>;    // (T, B, D*H)
@group(0) @binding(5) var<storage, read> grad_out: array<f32>;          // (T, B, D*H)
@group(0) @binding(6) var<storage, read> dh_rec: array<f32>;            // (B, H)
@group(0) @binding(7) var<storage, read> lengths: array<u32>;           // (B): steps of each row

// Row k of W_hh^T at the gate columns of unit j, one lane per gate (for step_tiled.wgsl and
// persistent.wgsl).
fn load_w(k: u32, j: u32) -> vec4<f32> {
    return vec4<f32>(f32(w_hh_t[k * s.hidden + j]), 0.0, 0.0, 0.0);
}

// `update` with the gate sums in the lanes of a vec4, as `load_w` returns them.
fn update4(b: u32, j: u32, slots: vec3<u32>, acc: vec4<f32>) -> f32 {
    return update(b, j, slots, acc.x);
}

// h of unit j of batch entry b at `slots` (t, prev_slot, next_slot), given
// acc = h_{t-1} W_hh^T for row j; returns h_t.
fn update(b: u32, j: u32, slots: vec3<u32>, acc: f32) -> f32 {
    if (slots.x >= lengths[b]) { return pass_through(b, j, slots); }
    let h = s.hidden;
    let g0 = (slots.x * s.batch + b) * h + j;
    let pre = f32(gates[g0]) + acc;
    var h_new: f32;
    if ((s.flags & STEP_RELU) != 0u) { h_new = max(pre, 0.0); } else { h_new = tanh_safe(pre); }
    gates[g0] = act_t(h_new);
    states[(slots.z * s.batch + b) * h + j] = h_new;
    output[(slots.x * s.batch + b) * s.out_width + s.out_col + j] = act_t(h_new);
    return h_new;
}

// gates[t] <- d(pre-activation).
@compute @workgroup_size(64, 1, 1)
fn backward_gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = s.hidden;
    let j = gid.x;
    let b = gid.y;
    if (j >= h) { return; }
    // Past the row's end the step was a copy: no gate gradients; dh_rec carries on.
    if (s.t >= lengths[b]) {
        gates[(s.t * s.batch + b) * h + j] = 0.0;
        return;
    }
    let dh = grad_out[(s.t * s.batch + b) * s.out_width + s.out_col + j] + dh_rec[b * h + j];
    let g0 = (s.t * s.batch + b) * h + j;
    let y = f32(gates[g0]);
    if ((s.flags & STEP_RELU) != 0u) {
        gates[g0] = act_t(select(0.0, dh, y > 0.0));  // backprop through relu
    } else {
        gates[g0] = act_t(dh * (1.0 - y * y));        // backprop through tanh
    }
}
