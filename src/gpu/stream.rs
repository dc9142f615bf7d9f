//! Streaming on the device: one time step of B independent streams per call, the recurrent state
//! carried from call to call in the plan's buffers (never read back unless asked for), each
//! stream's state restartable on its own. One submission per step.

use ndarray::{Array2, Array3, ArrayView3};

use super::buffers::Precision;
use super::model::GpuModel;
use super::plan::Plan;
use super::plan_cache::PlanLease;
use crate::error::{Result, RnnError};

impl GpuModel {
    /// x (1, B, I) -> output (B, D*H). `lease` holds the stream's own plan, whose buffers
    /// carry its state between steps (taken on the first step: then `start` must be given).
    /// `start` gives the states (L*D, B, H) to begin from; `None` continues from the state the
    /// previous step left. `resets` are streams whose state restarts from zero before this step.
    pub fn stream_step(
        &self,
        lease: &mut Option<PlanLease>,
        x: ArrayView3<'_, f32>,
        start: Option<(ArrayView3<'_, f32>, Option<ArrayView3<'_, f32>>)>,
        resets: &[usize],
    ) -> Result<Array2<f32>> {
        let (seq, batch, _) = x.dim();
        if seq != 1 {
            return Err(RnnError::Shape {
                tensor: "stream input".into(),
                expected: format!("(1, {batch}, I)"),
                got: x.shape().to_vec(),
            });
        }
        let ctx = self.context().clone();
        let cfg = self.config().clone();
        let width = cfg.output_size();
        if lease.is_none() && start.is_none() {
            return Err(RnnError::Config(
                "a stream's first step needs its start state".into(),
            ));
        }
        self.with_stream_plan(lease, batch, |plan| {
            let values: Vec<f32> = x.iter().copied().collect();
            ctx.write_in(&plan.input, &values, plan.activations);
            if let Some((h0, c0)) = &start {
                ctx.write(&plan.h0, &h0.iter().copied().collect::<Vec<_>>());
                if let Some(c0) = c0 {
                    ctx.write(&plan.c0, &c0.iter().copied().collect::<Vec<_>>());
                }
            }
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("stream step"),
                });
            let row = (cfg.hidden_size * 4) as u64;
            let states_bytes = (cfg.num_layers * cfg.directions()) as u64 * batch as u64 * row;
            let carries_cell = cfg.mode.has_cell_state();
            if start.is_none() {
                // Carry: the last step's final states become this step's initial ones.
                encoder.copy_buffer_to_buffer(&plan.h_n, 0, &plan.h0, 0, states_bytes);
                if carries_cell {
                    encoder.copy_buffer_to_buffer(&plan.c_n, 0, &plan.c0, 0, states_bytes);
                }
            }
            for &stream in resets {
                for k in 0..cfg.num_layers * cfg.directions() {
                    let at = (k * batch + stream) as u64 * row;
                    encoder.clear_buffer(&plan.h0, at, Some(row));
                    if carries_cell {
                        encoder.clear_buffer(&plan.c0, at, Some(row));
                    }
                }
            }
            ctx.checked("recording a stream step", || {
                plan.record_forward(&ctx, &mut encoder)
            })??;
            let output = plan.outputs.last().expect("at least one layer");
            let reads = [(output, batch * width, plan.activations)];
            let staging = ctx.stage_copies(&mut encoder, &reads)?;
            ctx.checked("submitting a stream step", || {
                ctx.queue.submit([encoder.finish()])
            })?;
            self.count_submission();
            let values = ctx
                .read_staging(&staging, &reads)?
                .pop()
                .expect("one buffer");
            Ok(Array2::from_shape_vec((batch, width), values).expect("sized"))
        })
    }

    /// The stream's plan: the one `lease` holds, else a new lease of a (1, B) plan.
    fn with_stream_plan<R>(
        &self,
        lease: &mut Option<PlanLease>,
        batch: usize,
        f: impl FnOnce(&mut Plan) -> Result<R>,
    ) -> Result<R> {
        if let Some(held) = lease {
            return self.with_leased(held, f);
        }
        let (result, new) = self.with_plan(1, batch, true, f)?;
        *lease = new;
        Ok(result)
    }

    /// The state the stream's last step left: (h, c), each (L*D, B, H).
    pub fn stream_state(
        &self,
        lease: &PlanLease,
        batch: usize,
    ) -> Result<(Array3<f32>, Option<Array3<f32>>)> {
        let ctx = self.context().clone();
        let cfg = self.config().clone();
        let dims = (cfg.num_layers * cfg.directions(), batch, cfg.hidden_size);
        let len = dims.0 * dims.1 * dims.2;
        self.with_leased(lease, |plan| {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("stream state"),
                });
            let mut reads = vec![(&plan.h_n, len, Precision::F32)];
            if cfg.mode.has_cell_state() {
                reads.push((&plan.c_n, len, Precision::F32));
            }
            let staging = ctx.stage_copies(&mut encoder, &reads)?;
            ctx.checked("submitting a stream state read", || {
                ctx.queue.submit([encoder.finish()])
            })?;
            let mut values = ctx.read_staging(&staging, &reads)?.into_iter();
            let h = Array3::from_shape_vec(dims, values.next().expect("h")).expect("sized");
            let c = values
                .next()
                .map(|v| Array3::from_shape_vec(dims, v).expect("sized"));
            Ok((h, c))
        })
    }
}
