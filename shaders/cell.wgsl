// Shared by the cell kernels (rnn, lstm, gru.wgsl), after their bindings: what every cell's
// `update` does the same way.

// Past row b's length (a variable-length batch): the state passes through unchanged and the
// output is zero; returns h. (LSTM also carries its cell state before calling this.)
fn pass_through(b: u32, j: u32, slots: vec3<u32>) -> f32 {
    let h = s.hidden;
    let h_prev = states[(slots.y * s.batch + b) * h + j];
    states[(slots.z * s.batch + b) * h + j] = h_prev;
    output[(slots.x * s.batch + b) * s.out_width + s.out_col + j] = 0.0;
    return h_prev;
}
