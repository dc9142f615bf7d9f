// One parameter tensor of a device optimizer step or gradient norm (adam.wgsl, sgd.wgsl,
// sum_squares.wgsl); matches `TensorParams` in src/gpu/optimizer.rs.
struct Tensor {
    len: u32,
    row: u32,         // invocations per grid row (2-D grid)
    cols: u32,        // columns of the (len / cols, cols) matrix, for the transposed copy
    transposed: u32,  // 1: also write param_t
    slot: u32,        // this tensor's index in `sums` (sum_squares.wgsl)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
