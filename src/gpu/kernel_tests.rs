//! Each kernel alone, on small odd shapes, against a plain-Rust computation of what it is meant
//! to compute: the matrix product in every operand layout and flag, column sums, the dropout
//! mask, each cell's forward step and gate backward, the hidden backward, and the optimizer
//! kernels. A failure names the kernel and prints the index, the value got and the one wanted.

use std::sync::Arc;

use super::buffers::Precision;
use super::context::GpuContext;
use super::kernels::{
    Kernel, MATMUL_ACCUMULATE, MATMUL_BIAS_A, MATMUL_BIAS_B, STEP_UNIFORM_STRIDE,
};
use super::model::GpuModel;
use super::ops::{self, Call, CellKernels, Matmul, StepShape, operand};
use super::submission::Submission;
use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::optim::Adam;
use crate::params::RnnParams;

/// The device, or `None` (reported) where there is none and RNN_WGPU_REQUIRE_GPU is not 1.
fn device() -> Option<Arc<GpuContext>> {
    match GpuContext::shared() {
        Ok(ctx) => Some(ctx),
        Err(e) if std::env::var("RNN_WGPU_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("RNN_WGPU_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: no GPU adapter ({e})");
            None
        }
    }
}

/// `len` values in [-1, 1], different for each `seed`.
fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as f32 + 1.0) * 0.618_034 + seed as f32 * 1.7).sin())
        .collect()
}

fn upload(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    ctx.upload("test data", data).expect("upload")
}

/// Records `calls` (with their step offsets) in one pass and runs them.
fn run(ctx: &GpuContext, calls: &[(&Call, Option<u32>)]) {
    let mut submission = Submission::new(ctx, "kernel test");
    submission
        .record("recording", |encoder| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for (call, offset) in calls {
                pass.set_pipeline(&call.pipeline.pipeline);
                pass.set_bind_group(0, &call.group, offset.as_slice());
                let (x, y, z) = call.grid;
                pass.dispatch_workgroups(x, y, z);
            }
            Ok(())
        })
        .expect("records");
    submission.submit_and_wait("running").expect("runs");
}

fn read(ctx: &GpuContext, buffer: &wgpu::Buffer, len: usize) -> Vec<f32> {
    let mut submission = Submission::new(ctx, "kernel test read");
    let slot = submission.read(buffer, len, Precision::F32);
    submission.submit("reading").expect("reads").take(slot)
}

/// |got - want| <= tolerance * (1 + |want|) everywhere, else the first index that is not.
fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * (1.0 + w.abs()),
            "{what}: index {i}: got {g}, want {w}"
        );
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn matmul_in_every_operand_layout_and_flag() {
    let Some(ctx) = device() else { return };
    for (m, n, k) in [(5, 7, 3), (130, 67, 19), (1, 1, 1)] {
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            for flags in [
                0,
                MATMUL_ACCUMULATE,
                MATMUL_BIAS_A | MATMUL_BIAS_B,
                MATMUL_ACCUMULATE | MATMUL_BIAS_B,
            ] {
                let what = format!("matmul m={m} n={n} k={k} a_t={a_t} b_t={b_t} flags={flags}");
                let (a_off, b_off, c_off, c_rs) = (3, 2, 1, n + 2);
                let a = values(a_off + m * k, 1);
                let b = values(b_off + k * n, 2);
                let c0 = values(c_off + m * c_rs, 3);
                let (bias_a, bias_b) = (values(n, 4), values(n, 5));
                // A (m, k) stored row-major, or transposed: (k, m) row-major.
                let (a_rs, a_cs) = if a_t { (1, m) } else { (k, 1) };
                let (b_rs, b_cs) = if b_t { (1, k) } else { (n, 1) };
                let mut want = c0.clone();
                for r in 0..m {
                    for col in 0..n {
                        let mut v: f32 = (0..k)
                            .map(|kk| {
                                a[a_off + r * a_rs + kk * a_cs] * b[b_off + kk * b_rs + col * b_cs]
                            })
                            .sum();
                        if flags & MATMUL_BIAS_A != 0 {
                            v += bias_a[col];
                        }
                        if flags & MATMUL_BIAS_B != 0 {
                            v += bias_b[col];
                        }
                        let at = c_off + r * c_rs + col;
                        want[at] = if flags & MATMUL_ACCUMULATE != 0 {
                            v + c0[at]
                        } else {
                            v
                        };
                    }
                }
                let (ab, bb, cb) = (upload(&ctx, &a), upload(&ctx, &b), upload(&ctx, &c0));
                let (ba, bbias) = (upload(&ctx, &bias_a), upload(&ctx, &bias_b));
                let call = ops::matmul(
                    &ctx,
                    Matmul {
                        dims: (m, n, k),
                        a: operand(&ab, a_off, a_rs, a_cs),
                        b: operand(&bb, b_off, b_rs, b_cs),
                        c: operand(&cb, c_off, c_rs, 1),
                        flags,
                        bias_a: &ba,
                        bias_b: &bbias,
                        f16: false,
                    },
                )
                .expect("builds");
                run(&ctx, &[(&call, None)]);
                // Also checks that nothing outside C's (m, n) window was written.
                assert_close(&what, &read(&ctx, &cb, want.len()), &want, 1e-5);
            }
        }
    }
}

#[test]
fn column_sums_and_the_dropout_mask() {
    let Some(ctx) = device() else { return };
    let (m, n) = (37, 6);
    let a = values(m * n, 6);
    let want: Vec<f32> = (0..n)
        .map(|col| (0..m).map(|r| a[r * n + col]).sum())
        .collect();
    let (ab, out) = (upload(&ctx, &a), ctx.zeros("sums", n).unwrap());
    let call = ops::column_sum(&ctx, &ab, &out, m, n).unwrap();
    run(&ctx, &[(&call, None)]);
    assert_close("column_sum", &read(&ctx, &out, n), &want, 1e-5);

    let len = 1001;
    let x = values(len, 7);
    let mask: Vec<f32> = (0..len)
        .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
        .collect();
    let want: Vec<f32> = x.iter().zip(&mask).map(|(x, m)| x * m).collect();
    let (xb, mb, out) = (
        upload(&ctx, &x),
        upload(&ctx, &mask),
        ctx.zeros("out", len).unwrap(),
    );
    let call = ops::mask(&ctx, &xb, &mb, &out, len).unwrap();
    run(&ctx, &[(&call, None)]);
    assert_close("mask", &read(&ctx, &out, len), &want, 0.0);
}

/// One direction's buffers for a cell kernel test at T = 2, B = 3, H = 5, with row 1 one
/// step long (so step t = 1 is past its end).
struct CellCase {
    mode: Mode,
    gates: usize,
    /// (T+1, B, H) states and cells; slot 1 holds h_{t-1}, c_{t-1} of step t = 1
    h_prev: Vec<f32>,
    c_prev: Vec<f32>,
    /// (T, B, G*H) input projections (pre-activations, x part)
    x_proj: Vec<f32>,
    /// (G*H, H) W_hh, and (G*H) b_hh
    w_hh: Vec<f32>,
    b_hh: Vec<f32>,
}

const SEQ: usize = 2;
const BATCH: usize = 3;
const HIDDEN: usize = 5;
const LENGTHS: [u32; BATCH] = [2, 1, 2];

impl CellCase {
    fn new(mode: Mode) -> Self {
        let gates = mode.gate_count();
        let gh = gates * HIDDEN;
        CellCase {
            mode,
            gates,
            h_prev: values(BATCH * HIDDEN, 8),
            c_prev: values(BATCH * HIDDEN, 9),
            x_proj: values(SEQ * BATCH * gh, 10),
            w_hh: values(gh * HIDDEN, 11).iter().map(|v| 0.5 * v).collect(),
            b_hh: values(gh, 12),
        }
    }

    /// h_{t-1} W_hh^T at gate row r of batch row b.
    fn acc(&self, b: usize, r: usize) -> f32 {
        (0..HIDDEN)
            .map(|k| self.h_prev[b * HIDDEN + k] * self.w_hh[r * HIDDEN + k])
            .sum()
    }

    /// What step t = 1 computes for (b, j): (h, c or 0, the activated gates, GRU's hn).
    fn step(&self, b: usize, j: usize) -> (f32, f32, Vec<f32>, f32) {
        let h = HIDDEN;
        let x = |g: usize| self.x_proj[(BATCH + b) * self.gates * h + g * h + j];
        let acc = |g: usize| self.acc(b, g * h + j);
        let (h_prev, c_prev) = (self.h_prev[b * h + j], self.c_prev[b * h + j]);
        match self.mode {
            Mode::RnnTanh => {
                let y = (x(0) + acc(0)).tanh();
                (y, 0.0, vec![y], 0.0)
            }
            Mode::RnnRelu => {
                let y = (x(0) + acc(0)).max(0.0);
                (y, 0.0, vec![y], 0.0)
            }
            Mode::Lstm => {
                let (i, f) = (sigmoid(x(0) + acc(0)), sigmoid(x(1) + acc(1)));
                let (g, o) = ((x(2) + acc(2)).tanh(), sigmoid(x(3) + acc(3)));
                let c = f * c_prev + i * g;
                (o * c.tanh(), c, vec![i, f, g, o], 0.0)
            }
            Mode::Gru => {
                let r = sigmoid(x(0) + acc(0) + self.b_hh[j]);
                let z = sigmoid(x(1) + acc(1) + self.b_hh[h + j]);
                let hn = acc(2) + self.b_hh[2 * h + j];
                let n = (x(2) + r * hn).tanh();
                (n + z * (h_prev - n), 0.0, vec![r, z, n], hn)
            }
        }
    }
}

/// The step uniforms of one forward direction at (T, B, H) = (SEQ, BATCH, HIDDEN).
fn step_uniforms(ctx: &GpuContext, mode: Mode) -> wgpu::Buffer {
    let shape = StepShape {
        mode,
        seq: SEQ,
        batch: BATCH,
        hidden: HIDDEN,
        gate_rows: mode.gate_count() * HIDDEN,
        direction: 0,
        directions: 1,
    };
    ops::step_uniforms(ctx, shape).expect("uniforms")
}

/// The device buffers of a `CellCase`, bound by name.
struct CellBuffers {
    steps: wgpu::Buffer,
    w_hh_t: wgpu::Buffer,
    b_hh: wgpu::Buffer,
    gates: wgpu::Buffer,
    states: wgpu::Buffer,
    cells: wgpu::Buffer,
    output: wgpu::Buffer,
    grad_out: wgpu::Buffer,
    dh_rec: wgpu::Buffer,
    dc: wgpu::Buffer,
    hidden_n: wgpu::Buffer,
    hgrads: wgpu::Buffer,
    direct: wgpu::Buffer,
    lengths: wgpu::Buffer,
}

impl CellBuffers {
    fn new(ctx: &GpuContext, case: &CellCase) -> Self {
        let (h, gh) = (HIDDEN, case.gates * HIDDEN);
        let slots = |prev: &[f32]| {
            let mut all = vec![0.0; (SEQ + 1) * BATCH * h];
            all[BATCH * h..2 * BATCH * h].copy_from_slice(prev);
            all
        };
        let w_hh_t: Vec<f32> = (0..h * gh)
            .map(|i| case.w_hh[(i % gh) * h + i / gh])
            .collect();
        CellBuffers {
            steps: step_uniforms(ctx, case.mode),
            w_hh_t: upload(ctx, &w_hh_t),
            b_hh: upload(ctx, &case.b_hh),
            gates: upload(ctx, &case.x_proj),
            states: upload(ctx, &slots(&case.h_prev)),
            cells: upload(ctx, &slots(&case.c_prev)),
            output: upload(ctx, &vec![7.0; SEQ * BATCH * h]),
            grad_out: upload(ctx, &values(SEQ * BATCH * h, 13)),
            dh_rec: upload(ctx, &values(BATCH * h, 14)),
            dc: upload(ctx, &values(BATCH * h, 15)),
            hidden_n: ctx.zeros("hidden_n", SEQ * BATCH * h).unwrap(),
            hgrads: ctx.zeros("hgrads", SEQ * BATCH * gh).unwrap(),
            direct: ctx.zeros("direct", BATCH * h).unwrap(),
            lengths: ctx.upload_u32("lengths", &LENGTHS).unwrap(),
        }
    }

    fn named(&self, mode: Mode) -> Vec<(&'static str, &wgpu::Buffer)> {
        let mut named = vec![
            ("s", &self.steps),
            ("w_hh_t", &self.w_hh_t),
            ("gates", &self.gates),
            ("states", &self.states),
            ("output", &self.output),
            ("grad_out", &self.grad_out),
            ("dh_rec", &self.dh_rec),
            ("lengths", &self.lengths),
        ];
        match mode {
            Mode::Lstm => named.extend([("cells", &self.cells), ("dc", &self.dc)]),
            Mode::Gru => named.extend([
                ("b_hh", &self.b_hh),
                ("hidden_n", &self.hidden_n),
                ("hgrads", &self.hgrads),
                ("direct", &self.direct),
            ]),
            Mode::RnnTanh | Mode::RnnRelu => {}
        }
        named
    }
}

const STEP_1: Option<u32> = Some(STEP_UNIFORM_STRIDE as u32);

#[test]
fn each_cells_forward_step_and_gate_backward() {
    let Some(ctx) = device() else { return };
    for mode in [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru] {
        let case = CellCase::new(mode);
        let buffers = CellBuffers::new(&ctx, &case);
        let named = buffers.named(mode);
        let kernels = CellKernels::for_cell(mode, false);
        let forward = Call::new(&ctx, kernels.step_forward, &named, (1, 1, 1)).unwrap();
        run(&ctx, &[(&forward, STEP_1)]);
        let (h, gh) = (HIDDEN, case.gates * HIDDEN);
        // Step t = 1 writes state slot 2 and output row t = 1; row 1 (one step long) passes
        // its state through with a zero output.
        let mut want_h = vec![0.0; BATCH * h];
        let mut want_c = vec![0.0; BATCH * h];
        let mut want_out = vec![7.0; SEQ * BATCH * h];
        for b in 0..BATCH {
            for j in 0..h {
                let (hv, cv) = if b == 1 {
                    (case.h_prev[b * h + j], case.c_prev[b * h + j])
                } else {
                    let (hv, cv, _, _) = case.step(b, j);
                    (hv, cv)
                };
                want_h[b * h + j] = hv;
                want_c[b * h + j] = cv;
                want_out[(BATCH + b) * h + j] = if b == 1 { 0.0 } else { hv };
            }
        }
        let slot2 = |buffer| read(&ctx, buffer, (SEQ + 1) * BATCH * h)[2 * BATCH * h..].to_vec();
        assert_close(
            &format!("{mode:?} forward: h_t"),
            &slot2(&buffers.states),
            &want_h,
            1e-5,
        );
        assert_close(
            &format!("{mode:?} forward: output"),
            &read(&ctx, &buffers.output, SEQ * BATCH * h),
            &want_out,
            1e-5,
        );
        if mode == Mode::Lstm {
            assert_close("Lstm forward: c_t", &slot2(&buffers.cells), &want_c, 1e-5);
        }
        let backward =
            Call::new(&ctx, kernels.backward_gates, &named, (1, BATCH as u32, 1)).unwrap();
        run(&ctx, &[(&backward, STEP_1)]);
        check_gate_backward(&ctx, &case, &buffers, gh);
    }
}

/// The gate gradients of step t = 1 after its forward, against the chain rule by hand.
fn check_gate_backward(ctx: &GpuContext, case: &CellCase, buffers: &CellBuffers, gh: usize) {
    let (h, mode) = (HIDDEN, case.mode);
    let grad_out = values(SEQ * BATCH * h, 13);
    let (dh_rec, dc_in) = (values(BATCH * h, 14), values(BATCH * h, 15));
    let mut want_gates = vec![0.0; BATCH * gh];
    let mut want_hgrads = vec![0.0; BATCH * gh];
    let mut want_dc = dc_in.clone();
    let mut want_direct = vec![0.0; BATCH * h];
    for b in [0, 2] {
        for j in 0..h {
            let (hv, c, act, hn) = case.step(b, j);
            let dh = grad_out[(BATCH + b) * h + j] + dh_rec[b * h + j];
            let at = |g: usize| b * gh + g * h + j;
            match mode {
                Mode::RnnTanh => want_gates[at(0)] = dh * (1.0 - hv * hv),
                Mode::RnnRelu => want_gates[at(0)] = if hv > 0.0 { dh } else { 0.0 },
                Mode::Lstm => {
                    let (i, f, g, o) = (act[0], act[1], act[2], act[3]);
                    let tc = c.tanh();
                    let dc = dc_in[b * h + j] + dh * o * (1.0 - tc * tc);
                    want_gates[at(0)] = dc * g * i * (1.0 - i);
                    want_gates[at(1)] = dc * case.c_prev[b * h + j] * f * (1.0 - f);
                    want_gates[at(2)] = dc * i * (1.0 - g * g);
                    want_gates[at(3)] = dh * tc * o * (1.0 - o);
                    want_dc[b * h + j] = dc * f;
                }
                Mode::Gru => {
                    let (r, z, n) = (act[0], act[1], act[2]);
                    let d_npre = dh * (1.0 - z) * (1.0 - n * n);
                    let d_rpre = d_npre * hn * r * (1.0 - r);
                    let d_zpre = dh * (case.h_prev[b * h + j] - n) * z * (1.0 - z);
                    want_gates[at(0)] = d_rpre;
                    want_gates[at(1)] = d_zpre;
                    want_gates[at(2)] = d_npre;
                    want_hgrads[at(0)] = d_rpre;
                    want_hgrads[at(1)] = d_zpre;
                    want_hgrads[at(2)] = d_npre * r;
                    want_direct[b * h + j] = dh * z;
                }
            }
        }
    }
    let step1 = |buffer| read(ctx, buffer, SEQ * BATCH * gh)[BATCH * gh..].to_vec();
    assert_close(
        &format!("{mode:?} backward_gates: gates"),
        &step1(&buffers.gates),
        &want_gates,
        1e-5,
    );
    match mode {
        Mode::Lstm => assert_close(
            "Lstm backward_gates: dc",
            &read(ctx, &buffers.dc, BATCH * h),
            &want_dc,
            1e-5,
        ),
        Mode::Gru => {
            assert_close(
                "Gru backward_gates: hgrads",
                &step1(&buffers.hgrads),
                &want_hgrads,
                1e-5,
            );
            let direct = read(ctx, &buffers.direct, BATCH * h);
            // Row 1 (past its end) leaves `direct` as it was: zeros.
            assert_close("Gru backward_gates: direct", &direct, &want_direct, 1e-5);
        }
        Mode::RnnTanh | Mode::RnnRelu => {}
    }
}

#[test]
fn hidden_backward_with_and_without_the_direct_term() {
    let Some(ctx) = device() else { return };
    for mode in [Mode::Lstm, Mode::Gru] {
        let (h, gh) = (HIDDEN, mode.gate_count() * HIDDEN);
        let hg = values(SEQ * BATCH * gh, 16);
        let w_hh = values(gh * h, 17);
        let direct = values(BATCH * h, 18);
        let dh_before = values(BATCH * h, 19);
        let mut want = dh_before.clone();
        for b in [0, 2] {
            for k in 0..h {
                let mut sum: f32 = (0..gh)
                    .map(|r| hg[(BATCH + b) * gh + r] * w_hh[r * h + k])
                    .sum();
                if mode == Mode::Gru {
                    sum += direct[b * h + k];
                }
                want[b * h + k] = sum;
            }
        }
        let steps = step_uniforms(&ctx, mode);
        let (hgb, wb, db) = (
            upload(&ctx, &hg),
            upload(&ctx, &w_hh),
            upload(&ctx, &direct),
        );
        let dh_rec = upload(&ctx, &dh_before);
        let lengths = ctx.upload_u32("lengths", &LENGTHS).unwrap();
        let named = [
            ("s", &steps),
            ("w_hh", &wb),
            ("hg", &hgb),
            ("direct", &db),
            ("dh_rec", &dh_rec),
            ("lengths", &lengths),
        ];
        let call = Call::new(&ctx, Kernel::HiddenBackward, &named, (1, 1, 1)).unwrap();
        run(&ctx, &[(&call, STEP_1)]);
        // Row 1 is past its end at t = 1: its dh_rec carries on unchanged.
        let what = format!("hidden_backward ({mode:?})");
        assert_close(&what, &read(&ctx, &dh_rec, BATCH * h), &want, 1e-5);
    }
}

/// A one-layer GRU's parameters on the device with `grads` written into its gradient buffers,
/// in `named()` order.
fn model_with_grads(ctx: &Arc<GpuContext>, grads: &[Vec<f32>]) -> (GpuModel, RnnParams<f32>) {
    let config = RnnConfig::new(Mode::Gru, 3, 4);
    let params = RnnParams::<f32>::init(&config, 5);
    let model = GpuModel::new(ctx.clone(), &config, &params, false).unwrap();
    let cell = &model.params.cells[0];
    for (buffer, grad) in [
        &cell.grad_w_ih,
        &cell.grad_w_hh,
        &cell.grad_b_ih,
        &cell.grad_b_hh,
    ]
    .into_iter()
    .zip(grads)
    {
        ctx.write(buffer, grad);
    }
    (model, params)
}

#[test]
fn sum_of_squares_adam_and_sgd_steps() {
    let Some(ctx) = device() else { return };
    let lens = [12 * 3, 12 * 4, 12, 12];
    let grads: Vec<Vec<f32>> = lens
        .iter()
        .zip(20..)
        .map(|(&n, seed)| values(n, seed))
        .collect();
    let (model, params) = model_with_grads(&ctx, &grads);
    let want: Vec<f32> = grads
        .iter()
        .map(|g| g.iter().map(|v| v * v).sum())
        .collect();
    assert_close(
        "sum_squares",
        &model.grad_square_sums().unwrap(),
        &want,
        1e-5,
    );

    // Two AdamW steps with the gradients scaled by 0.5, as torch.optim.AdamW computes them.
    let adam = Adam::adamw(0.01, 0.1);
    let (scale, before) = (
        0.5f32,
        params
            .slices()
            .into_iter()
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>(),
    );
    let mut want = before.clone();
    let mut moments: Vec<(Vec<f32>, Vec<f32>)> =
        lens.iter().map(|&n| (vec![0.0; n], vec![0.0; n])).collect();
    for t in 1..=2 {
        model.adam_step(&adam, scale).unwrap();
        let (bias1, bias2) = (1.0 - 0.9f32.powi(t), 1.0 - 0.999f32.powi(t));
        for ((p, g), (m, v)) in want.iter_mut().zip(&grads).zip(&mut moments) {
            for i in 0..p.len() {
                let g = g[i] * scale;
                p[i] *= 1.0 - 0.01 * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                p[i] -= 0.01 / bias1 * m[i] / (v[i].sqrt() / bias2.sqrt() + 1e-8);
            }
        }
    }
    let got = model.read_params().unwrap();
    for (k, (g, w)) in got.slices().iter().zip(&want).enumerate() {
        assert_close(&format!("adam: parameter {k}"), g, w, 1e-5);
    }
    // The transposed copy of W_hh the forward kernels read moved with it.
    let cell = &model.params.cells[0];
    let w_hh_t = read(&ctx, &cell.w_hh_t, 12 * 4);
    let want_t: Vec<f32> = (0..48).map(|i| want[1][(i % 12) * 4 + i / 12]).collect();
    assert_close("adam: W_hh transposed", &w_hh_t, &want_t, 1e-5);

    // SGD with momentum on a fresh model: buf = momentum * buf + g; p -= lr * buf.
    let (model, params) = model_with_grads(&ctx, &grads);
    let sgd = crate::optim::Sgd::new(0.1, 0.9);
    let mut want: Vec<Vec<f32>> = params.slices().into_iter().map(<[f32]>::to_vec).collect();
    let mut bufs: Vec<Vec<f32>> = lens.iter().map(|&n| vec![0.0; n]).collect();
    for _ in 0..2 {
        model.sgd_step(&sgd, 1.0).unwrap();
        for ((p, g), buf) in want.iter_mut().zip(&grads).zip(&mut bufs) {
            for i in 0..p.len() {
                buf[i] = 0.9 * buf[i] + g[i];
                p[i] -= 0.1 * buf[i];
            }
        }
    }
    let got = model.read_params().unwrap();
    for (k, (g, w)) in got.slices().iter().zip(&want).enumerate() {
        assert_close(&format!("sgd: parameter {k}"), g, w, 1e-5);
    }
}
