// GRU: the fused recurrent step and the gate backward of one time step.
// The forward kernels are step_tiled.wgsl's `forward` and persistent.wgsl's `forward_persistent`
// over this file's `load_w` and `update4`;
// `backward_gates`: invocation (j, b), hidden unit j of batch entry b, dispatch (ceil(H / 64), B, 1).
// Gate rows [r | z | n], each H wide. n = tanh(x_n + r * (W_hn h + b_hn)).

// weight_t / act_t: f32, or f16 in the f16 inference variant (states and cells stay f32).
@group(0) @binding(0) var<uniform> s: Step;
@group(0) @binding(1) var<storage, read> w_hh_t: array<weight_t>;       // (H, 3H): W_hh transposed
@group(0) @binding(2) var<storage, read> b_hh: array<f32>;              // (3H), zeros without bias
@group(0) @binding(3) var<storage, read_write> gates: array<act_t>;     // (T, B, 3H)
@group(0) @binding(4) var<storage, read_write> states: array<f32>;      // (T+1, B, H)
@group(0) @binding(5) var<storage, read_write> hidden_n: array<f32>;    // (T, B, H): W_hn h + b_hn
@group(0) @binding(6) var<storage, read_write> output: array<act_t>;    // (T, B, D*H)
@group(0) @binding(7) var<storage, read> grad_out: array<f32>;          // (T, B, D*H)
@group(0) @binding(8) var<storage, read> dh_rec: array<f32>;            // (B, H)
@group(0) @binding(9) var<storage, read_write> hgrads: array<f32>;      // (T, B, 3H): d(h projections)
@group(0) @binding(10) var<storage, read_write> direct: array<f32>;     // (B, H): z * dh
@group(0) @binding(11) var<storage, read> lengths: array<u32>;          // (B): steps of each row

// Row k of W_hh^T at the gate columns of unit j, one lane per gate (for step_tiled.wgsl and
// persistent.wgsl).
fn load_w(k: u32, j: u32) -> vec4<f32> {
    let w = k * 3u * s.hidden + j;
    let h = s.hidden;
    return vec4<f32>(f32(w_hh_t[w]), f32(w_hh_t[w + h]), f32(w_hh_t[w + 2u * h]), 0.0);
}

// `update` with the gate sums in the lanes of a vec4, as `load_w` returns them.
fn update4(b: u32, j: u32, slots: vec3<u32>, acc: vec4<f32>) -> f32 {
    return update(b, j, slots, acc.xyz);
}

// Gates and h of unit j of batch entry b at `slots` (t, prev_slot, next_slot), given
// acc = h_{t-1} W_hh^T for the three gate rows of j; returns h_t.
fn update(b: u32, j: u32, slots: vec3<u32>, acc: vec3<f32>) -> f32 {
    if (slots.x >= lengths[b]) { return pass_through(b, j, slots); }
    let h = s.hidden;
    let g0 = (slots.x * s.batch + b) * 3u * h + j;
    let r = sigmoid(f32(gates[g0]) + acc.x + b_hh[j]);
    let z = sigmoid(f32(gates[g0 + h]) + acc.y + b_hh[h + j]);
    let hn = acc.z + b_hh[2u * h + j];
    let n = tanh_safe(f32(gates[g0 + 2u * h]) + r * hn);
    gates[g0] = act_t(r);
    gates[g0 + h] = act_t(z);
    gates[g0 + 2u * h] = act_t(n);
    hidden_n[(slots.x * s.batch + b) * h + j] = hn;
    let h_new = n + z * (states[(slots.y * s.batch + b) * h + j] - n);
    states[(slots.z * s.batch + b) * h + j] = h_new;
    output[(slots.x * s.batch + b) * s.out_width + s.out_col + j] = act_t(h_new);
    return h_new;
}

// gates[t] <- d(x projections); hgrads[t] <- d(h projections); direct <- z * dh.
@compute @workgroup_size(64, 1, 1)
fn backward_gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = s.hidden;
    let j = gid.x;
    let b = gid.y;
    if (j >= h) { return; }
    // Past the row's end the step was a copy: no gate gradients; dh_rec carries on.
    if (s.t >= lengths[b]) {
        let g = (s.t * s.batch + b) * 3u * h + j;
        gates[g] = 0.0;
        gates[g + h] = 0.0;
        gates[g + 2u * h] = 0.0;
        hgrads[g] = 0.0;
        hgrads[g + h] = 0.0;
        hgrads[g + 2u * h] = 0.0;
        return;
    }
    let bj = b * h + j;
    let dh = grad_out[(s.t * s.batch + b) * s.out_width + s.out_col + j] + dh_rec[bj];
    let g0 = (s.t * s.batch + b) * 3u * h + j;
    let r = f32(gates[g0]);
    let z = f32(gates[g0 + h]);
    let n = f32(gates[g0 + 2u * h]);
    // backprop through h = n + z (h_prev - n)
    let d_n = dh * (1.0 - z);
    let d_z = dh * (states[s.prev_slot * s.batch * h + bj] - n);
    direct[bj] = dh * z;
    // backprop through n = tanh(x_n + r h_n), then the sigmoids
    let d_npre = d_n * (1.0 - n * n);
    let d_r = d_npre * hidden_n[(s.t * s.batch + b) * h + j];
    let d_rpre = d_r * r * (1.0 - r);
    let d_zpre = d_z * z * (1.0 - z);
    gates[g0] = act_t(d_rpre);
    gates[g0 + h] = act_t(d_zpre);
    gates[g0 + 2u * h] = act_t(d_npre);
    hgrads[g0] = d_rpre;
    hgrads[g0 + h] = d_zpre;
    hgrads[g0 + 2u * h] = d_npre * r;
}
