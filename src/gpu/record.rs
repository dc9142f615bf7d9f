//! Recording a plan: the forward pass of every layer and direction, and BPTT through it, into
//! one command encoder; each call already holds its pipeline and bind group, so recording looks
//! nothing up: one dispatch per layer, direction and time step forward, two backward.

use super::kernels::STEP_UNIFORM_STRIDE;
use super::ops::Call;
use super::plan::{ForwardVariant, Plan};

impl Plan {
    /// Records copying h0 / c0 in and the forward pass of every layer.
    pub fn record_forward(&self, encoder: &mut wgpu::CommandEncoder) -> usize {
        let slab = (self.batch * self.config.hidden_size * 4) as u64;
        for (k, dir) in self.directions.iter().enumerate() {
            let at = dir.h0_slot as u64 * slab;
            encoder.copy_buffer_to_buffer(&self.h0, k as u64 * slab, &dir.states, at, slab);
            if let Some(cells) = &dir.cells {
                encoder.copy_buffer_to_buffer(&self.c0, k as u64 * slab, cells, at, slab);
            }
        }
        let mut dispatches = 0;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            let d = self.config.directions();
            for (k, dir) in self.directions.iter().enumerate() {
                dispatch(&mut pass, &dir.projection, None);
                dispatches += 1;
                dispatches += match self.forward_variant {
                    ForwardVariant::PerStep => {
                        steps(&mut pass, &dir.forward, dir.order.iter().copied())
                    }
                    ForwardVariant::Persistent => {
                        dispatch(&mut pass, &dir.forward, Some(0));
                        1
                    }
                };
                let last_of_layer = k % d == d - 1;
                if let (true, Some(drop)) = (last_of_layer, self.dropout.get(k / d)) {
                    dispatch(&mut pass, &drop.forward, None);
                    dispatches += 1;
                }
            }
        }
        for (k, dir) in self.directions.iter().enumerate() {
            let at = dir.final_slot as u64 * slab;
            encoder.copy_buffer_to_buffer(&dir.states, at, &self.h_n, k as u64 * slab, slab);
            if let Some(cells) = &dir.cells {
                encoder.copy_buffer_to_buffer(cells, at, &self.c_n, k as u64 * slab, slab);
            }
        }
        dispatches
    }

    /// Records BPTT through the last recorded forward: every parameter gradient, dL/dh0, dL/dc0
    /// and, when asked, dL/d input.
    pub fn record_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        need_input_grad: bool,
    ) -> usize {
        let slab = (self.batch * self.config.hidden_size * 4) as u64;
        for (k, dir) in self.directions.iter().enumerate() {
            encoder.copy_buffer_to_buffer(&self.grad_h_n, k as u64 * slab, &dir.dh_rec, 0, slab);
            if let Some(dc) = &dir.dc {
                encoder.copy_buffer_to_buffer(&self.grad_c_n, k as u64 * slab, dc, 0, slab);
            }
        }
        for grad in &self.grad_inputs {
            encoder.clear_buffer(grad, 0, None);
        }
        let d = self.config.directions();
        let mut dispatches = 0;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("backward"),
                timestamp_writes: None,
            });
            for (k, dir) in self.directions.iter().enumerate().rev() {
                let layer = k / d;
                let first_of_layer = k % d == d - 1;
                if let (true, Some(drop)) = (first_of_layer, self.dropout.get(layer)) {
                    dispatch(&mut pass, &drop.backward, None);
                    dispatches += 1;
                }
                for &t in dir.order.iter().rev() {
                    dispatches += steps(&mut pass, &dir.step_backward, [t]);
                    dispatches += steps(&mut pass, &dir.hidden_backward, [t]);
                }
                for call in &dir.weight_grads {
                    dispatch(&mut pass, call, None);
                    dispatches += 1;
                }
                if layer > 0 || need_input_grad {
                    dispatch(&mut pass, &dir.input_grad, None);
                    dispatches += 1;
                }
            }
        }
        for (k, dir) in self.directions.iter().enumerate() {
            encoder.copy_buffer_to_buffer(&dir.dh_rec, 0, &self.grad_h0, k as u64 * slab, slab);
            if let Some(dc) = &dir.dc {
                encoder.copy_buffer_to_buffer(dc, 0, &self.grad_c0, k as u64 * slab, slab);
            }
        }
        dispatches
    }
}

fn dispatch(pass: &mut wgpu::ComputePass<'_>, call: &Call, offset: Option<u32>) {
    pass.set_pipeline(&call.pipeline.pipeline);
    pass.set_bind_group(0, &call.group, offset.as_slice());
    let (x, y, z) = call.grid;
    pass.dispatch_workgroups(x, y, z);
}

/// One dispatch of a per-step call for each time index (its step uniform picked by offset);
/// returns how many.
fn steps(
    pass: &mut wgpu::ComputePass<'_>,
    call: &Call,
    times: impl IntoIterator<Item = usize>,
) -> usize {
    pass.set_pipeline(&call.pipeline.pipeline);
    let (x, y, z) = call.grid;
    let mut count = 0;
    for t in times {
        pass.set_bind_group(0, &call.group, &[(t as u64 * STEP_UNIFORM_STRIDE) as u32]);
        pass.dispatch_workgroups(x, y, z);
        count += 1;
    }
    count
}
