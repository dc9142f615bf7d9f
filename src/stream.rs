//! Streaming inference: `step(x_t) -> y_t` for B independent streams, equal step for step to the
//! full-sequence forward, with each stream's state carried or restarted on its own. On the GPU the
//! state stays on the device between calls and each step is one submission.

use std::sync::Arc;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};

use crate::error::{Result, RnnError};
use crate::gpu::{GpuModel, PlanLease};
use crate::model::Rnn;

/// B streams through one model (made by `Rnn::stream`).
pub struct Stream<'m> {
    model: &'m Rnn<f32>,
    batch: usize,
    /// CPU: the carried state (L, B, H) and, for LSTM, the cell state.
    h: Array3<f32>,
    c: Option<Array3<f32>>,
    gpu: Option<Arc<GpuModel>>,
    /// GPU: the stream's own plan, whose buffers hold its state between steps (taken by the
    /// first step; other forwards of the model never touch it).
    lease: Option<PlanLease>,
    /// GPU: streams to restart before the next step.
    resets: Vec<usize>,
}

impl Rnn<f32> {
    /// B streams starting from zero states. Only a unidirectional stack can stream: the reverse
    /// direction would need the inputs still to come.
    pub fn stream(&self, batch: usize) -> Result<Stream<'_>> {
        let cfg = self.config();
        let dims = (cfg.num_layers, batch, cfg.hidden_size);
        let c = cfg.mode.has_cell_state().then(|| Array3::zeros(dims));
        self.stream_with(batch, Array3::zeros(dims), c)
    }

    /// B streams starting from given states: h0 and (LSTM) c0, each (L, B, H), as a forward's
    /// `h0` / `c0` (or a previous stream's `state()`).
    pub fn stream_from(
        &self,
        h0: ArrayView3<'_, f32>,
        c0: Option<ArrayView3<'_, f32>>,
    ) -> Result<Stream<'_>> {
        let (h, c) = self.checked_states(h0, c0)?;
        self.stream_with(h0.dim().1, h, c)
    }

    fn stream_with(
        &self,
        batch: usize,
        h: Array3<f32>,
        c: Option<Array3<f32>>,
    ) -> Result<Stream<'_>> {
        let cfg = self.config();
        if cfg.bidirectional {
            return Err(RnnError::Config("a bidirectional model cannot stream: its reverse direction reads the whole sequence".into()));
        }
        if batch == 0 {
            return Err(RnnError::ZeroSize {
                what: "streams".into(),
            });
        }
        cfg.check_activation_size(1, batch)?;
        crate::params::check_shapes(cfg, self.params())?;
        Ok(Stream {
            model: self,
            batch,
            h,
            c,
            gpu: self.gpu_model()?,
            lease: None,
            resets: Vec::new(),
        })
    }
}

impl Stream<'_> {
    /// x (B, I): one input per stream -> (B, H): each stream's output at this step.
    pub fn step(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let input_size = self.model.config().input_size;
        if x.dim() != (self.batch, input_size) {
            return Err(RnnError::Shape {
                tensor: "stream input".into(),
                expected: format!("({}, {input_size})", self.batch),
                got: x.shape().to_vec(),
            });
        }
        if let Some(gpu) = &self.gpu {
            // The device model runs seq-first whatever the config's layout: (1, B, I).
            let start = self
                .lease
                .is_none()
                .then(|| (self.h.view(), self.c.as_ref().map(|c| c.view())));
            let resets = std::mem::take(&mut self.resets);
            return gpu.stream_step(&mut self.lease, x.insert_axis(Axis(0)), start, &resets);
        }
        // One step in the layout `forward` reads: (1, B, I), or (B, 1, I) with batch_first.
        let step_axis = Axis(usize::from(self.model.config().batch_first));
        let out = self.model.forward(
            x.insert_axis(step_axis),
            Some(self.h.view()),
            self.c.as_ref().map(|c| c.view()),
        )?;
        self.h = out.h_n;
        self.c = out.c_n;
        Ok(out.output.index_axis_move(step_axis, 0))
    }

    /// Restarts the listed streams from zero state; the others carry on.
    pub fn reset(&mut self, streams: &[usize]) -> Result<()> {
        if let Some(&bad) = streams.iter().find(|&&s| s >= self.batch) {
            return Err(RnnError::Config(format!(
                "stream {bad} does not exist (there are {})",
                self.batch
            )));
        }
        for &s in streams {
            self.h.index_axis_mut(Axis(1), s).fill(0.0);
            if let Some(c) = self.c.as_mut() {
                c.index_axis_mut(Axis(1), s).fill(0.0);
            }
        }
        if self.lease.is_some() {
            self.resets.extend_from_slice(streams);
        }
        Ok(())
    }

    /// The carried state: h and, for LSTM, c, each (L, B, H) (read back from the GPU there).
    pub fn state(&self) -> Result<(Array3<f32>, Option<Array3<f32>>)> {
        let (mut h, mut c) = match (&self.gpu, &self.lease) {
            (Some(gpu), Some(lease)) => gpu.stream_state(lease, self.batch)?,
            _ => return Ok((self.h.clone(), self.c.clone())),
        };
        // Restarts asked for since the last step apply at the next one; show them already.
        for &s in &self.resets {
            h.index_axis_mut(Axis(1), s).fill(0.0);
            if let Some(c) = c.as_mut() {
                c.index_axis_mut(Axis(1), s).fill(0.0);
            }
        }
        Ok((h, c))
    }
}
