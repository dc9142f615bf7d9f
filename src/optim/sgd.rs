//! SGD with momentum (`torch.optim.SGD(lr, momentum)`, no dampening, no Nesterov).

use super::Optimizer;

#[derive(Clone, Debug)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    /// Momentum buffers, one per parameter, empty before the first step.
    pub buffers: Vec<Vec<f32>>,
}

impl Sgd {
    pub fn new(lr: f32, momentum: f32) -> Self {
        Sgd {
            lr,
            momentum,
            buffers: Vec::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        let first = self.buffers.len() != params.len();
        if first {
            // torch starts each buffer at the first gradient itself.
            self.buffers = grads.iter().map(|g| g.to_vec()).collect();
        }
        for ((p, g), buf) in params.iter_mut().zip(grads).zip(&mut self.buffers) {
            for ((p, &g), b) in p.iter_mut().zip(g.iter()).zip(buf.iter_mut()) {
                if !first {
                    *b = self.momentum * *b + g;
                }
                *p -= self.lr * if self.momentum != 0.0 { *b } else { g };
            }
        }
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
}
