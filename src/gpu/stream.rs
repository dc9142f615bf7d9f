//! Streaming on the device: one time step of B independent streams per call, the recurrent state
//! carried from call to call in the plan's buffers (never read back unless asked for), each
//! stream's state restartable on its own. One submission per step.

use ndarray::{Array2, Array3, ArrayView3};

use super::model::GpuModel;
use super::plan::Plan;
use super::plan_cache::PlanLease;
use super::submission::Submission;
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
            let mut submission = Submission::new(&ctx, "stream step");
            let row = (cfg.hidden_size * 4) as u64;
            let states_bytes = (cfg.num_layers * cfg.directions()) as u64 * batch as u64 * row;
            let carries_cell = cfg.mode.has_cell_state();
            submission.record("recording a stream step", |encoder| {
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
                Ok(plan.record_forward(encoder))
            })?;
            let output = plan.outputs.last().expect("at least one layer");
            let slot = submission.read(output, batch * width, plan.activations);
            let mut values = submission.submit("submitting a stream step")?;
            self.count_submission(None, None);
            Ok(Array2::from_shape_vec((batch, width), values.take(slot)).expect("sized"))
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
            let mut submission = Submission::new(&ctx, "stream state");
            let h = submission.read_f32(&plan.h_n, len);
            let c = cfg
                .mode
                .has_cell_state()
                .then(|| submission.read_f32(&plan.c_n, len));
            let mut values = submission.submit("submitting a stream state read")?;
            let h = Array3::from_shape_vec(dims, values.take(h)).expect("sized");
            let c = c.map(|c| Array3::from_shape_vec(dims, values.take(c)).expect("sized"));
            Ok((h, c))
        })
    }
}
