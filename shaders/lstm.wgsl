// LSTM: the fused recurrent step and the gate backward of one time step.
// The forward kernels are step_tiled.wgsl's `forward` and persistent.wgsl's `forward_persistent`
// over this file's `load_w` and `update4`;
// `backward_gates`: invocation (j, b), hidden unit j of batch entry b, dispatch (ceil(H / 64), B, 1).
// Gate rows [i | f | g | o], each H wide. States are time-indexed (T+1 slots).

// weight_t / act_t: f32, or f16 in the f16 inference variant (states and cells stay f32).
@group(0) @binding(0) var<uniform> s: Step;
@group(0) @binding(1) var<storage, read> w_hh_t: array<weight_t>;       // (H, 4H): W_hh transposed
@group(0) @binding(2) var<storage, read_write> gates: array<act_t>;     // (T, B, 4H)
@group(0) @binding(3) var<storage, read_write> states: array<f32>;      // (T+1, B, H)
@group(0) @binding(4) var<storage, read_write> cells: array<f32>;       // (T+1, B, H)
@group(0) @binding(5) var<storage, read_write> output: array<act_t>;    // (T, B, D*H)
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;          // (T, B, D*H)
@group(0) @binding(7) var<storage, read> dh_rec: array<f32>;            // (B, H): dL/dh from step t+1
@group(0) @binding(8) var<storage, read_write> dc: array<f32>;          // (B, H): dL/dc carried
@group(0) @binding(9) var<storage, read> lengths: array<u32>;           // (B): steps of each row

// Row k of W_hh^T at the gate columns of unit j, one lane per gate (for step_tiled.wgsl and
// persistent.wgsl).
fn load_w(k: u32, j: u32) -> vec4<f32> {
    let w = k * 4u * s.hidden + j;
    let h = s.hidden;
    return vec4<f32>(f32(w_hh_t[w]), f32(w_hh_t[w + h]), f32(w_hh_t[w + 2u * h]), f32(w_hh_t[w + 3u * h]));
}

// `update` with the gate sums in the lanes of a vec4, as `load_w` returns them.
fn update4(b: u32, j: u32, slots: vec3<u32>, acc: vec4<f32>) -> f32 {
    return update(b, j, slots, acc);
}

// Gates, c and h of unit j of batch entry b at `slots` (t, prev_slot, next_slot), given
// acc = h_{t-1} W_hh^T for the four gate rows of j; returns h_t.
fn update(b: u32, j: u32, slots: vec3<u32>, acc: vec4<f32>) -> f32 {
    let h = s.hidden;
    if (slots.x >= lengths[b]) {
        cells[(slots.z * s.batch + b) * h + j] = cells[(slots.y * s.batch + b) * h + j];
        return pass_through(b, j, slots);
    }
    let g0 = (slots.x * s.batch + b) * 4u * h + j;
    let i_g = sigmoid(f32(gates[g0]) + acc.x);
    let f_g = sigmoid(f32(gates[g0 + h]) + acc.y);
    let g_g = tanh_safe(f32(gates[g0 + 2u * h]) + acc.z);
    let o_g = sigmoid(f32(gates[g0 + 3u * h]) + acc.w);
    gates[g0] = act_t(i_g);
    gates[g0 + h] = act_t(f_g);
    gates[g0 + 2u * h] = act_t(g_g);
    gates[g0 + 3u * h] = act_t(o_g);
    let c_new = f_g * cells[(slots.y * s.batch + b) * h + j] + i_g * g_g;
    let h_new = o_g * tanh_safe(c_new);
    let next = (slots.z * s.batch + b) * h + j;
    cells[next] = c_new;
    states[next] = h_new;
    output[(slots.x * s.batch + b) * s.out_width + s.out_col + j] = act_t(h_new);
    return h_new;
}

// gates[t] <- d(pre-activations); dc <- dL/dc_{t-1}.
@compute @workgroup_size(64, 1, 1)
fn backward_gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = s.hidden;
    let j = gid.x;
    let b = gid.y;
    if (j >= h) { return; }
    // Past the row's end the step was a copy: no gate gradients; dc and dh_rec carry on.
    if (s.t >= lengths[b]) {
        let g = (s.t * s.batch + b) * 4u * h + j;
        gates[g] = 0.0;
        gates[g + h] = 0.0;
        gates[g + 2u * h] = 0.0;
        gates[g + 3u * h] = 0.0;
        return;
    }
    let bj = b * h + j;
    let dh = grad_out[(s.t * s.batch + b) * s.out_width + s.out_col + j] + dh_rec[bj];
    let g0 = (s.t * s.batch + b) * 4u * h + j;
    let i_g = f32(gates[g0]);
    let f_g = f32(gates[g0 + h]);
    let g_g = f32(gates[g0 + 2u * h]);
    let o_g = f32(gates[g0 + 3u * h]);
    let tc = tanh_safe(cells[s.next_slot * s.batch * h + bj]);
    // backprop through h = o tanh(c), then c = f c_prev + i g
    let dc_t = dc[bj] + dh * o_g * (1.0 - tc * tc);
    let d_o = dh * tc;
    let d_i = dc_t * g_g;
    let d_g = dc_t * i_g;
    let d_f = dc_t * cells[s.prev_slot * s.batch * h + bj];
    dc[bj] = dc_t * f_g;
    // backprop through the gate nonlinearities
    gates[g0] = act_t(d_i * i_g * (1.0 - i_g));
    gates[g0 + h] = act_t(d_f * f_g * (1.0 - f_g));
    gates[g0 + 2u * h] = act_t(d_g * (1.0 - g_g * g_g));
    gates[g0 + 3u * h] = act_t(d_o * o_g * (1.0 - o_g));
}
