//! SGD (`torch.optim.SGD(lr, momentum, weight_decay, nesterov)`, no dampening).

use super::Optimizer;

#[derive(Clone, Debug)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    /// L2 penalty added to the gradient: g + weight_decay * p.
    pub weight_decay: f32,
    /// Nesterov momentum: the step is g + momentum * buf instead of buf.
    pub nesterov: bool,
    /// Momentum buffers, one per parameter, empty before the first step.
    pub buffers: Vec<Vec<f32>>,
}

impl Sgd {
    pub fn new(lr: f32, momentum: f32) -> Self {
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            nesterov: false,
            buffers: Vec::new(),
        }
    }

    /// The same optimizer with `weight_decay` (PyTorch's `weight_decay=`).
    pub fn with_weight_decay(self, weight_decay: f32) -> Self {
        Sgd {
            weight_decay,
            ..self
        }
    }

    /// The same optimizer with Nesterov momentum (PyTorch's `nesterov=True`).
    pub fn with_nesterov(self, nesterov: bool) -> Self {
        Sgd { nesterov, ..self }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        // torch starts each buffer at the first step's (decayed) gradient itself.
        let first = self.buffers.len() != params.len();
        if first {
            self.buffers = grads.iter().map(|g| vec![0.0; g.len()]).collect();
        }
        for ((p, g), buf) in params.iter_mut().zip(grads).zip(&mut self.buffers) {
            for ((p, &g), b) in p.iter_mut().zip(g.iter()).zip(buf.iter_mut()) {
                let g = if self.weight_decay != 0.0 {
                    g + self.weight_decay * *p
                } else {
                    g
                };
                let step = if self.momentum == 0.0 {
                    g
                } else {
                    *b = if first { g } else { self.momentum * *b + g };
                    if self.nesterov {
                        g + self.momentum * *b
                    } else {
                        *b
                    }
                };
                *p -= self.lr * step;
            }
        }
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
}
