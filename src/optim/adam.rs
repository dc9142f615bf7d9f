//! Adam and AdamW (`torch.optim.Adam` / `AdamW`, bias-corrected, no amsgrad).

use super::Optimizer;

#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay (AdamW); 0 for Adam.
    pub weight_decay: f32,
    pub step: u64,
    /// First and second moments, one per parameter.
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

/// The scalars of one Adam step that every parameter's update shares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamCoefficients {
    /// lr / (1 - beta1^t)
    pub step_size: f32,
    /// sqrt(1 - beta2^t)
    pub bias2_sqrt: f32,
    /// 1 - lr * weight_decay: AdamW's decoupled decay factor (1 for Adam)
    pub decay: f32,
}

impl Adam {
    /// The coefficients of step `step` (counting from 1), as torch computes them; the host step
    /// and the device step (`Rnn::adam_step_on_device`) both take them from here.
    pub fn coefficients(&self, step: u64) -> AdamCoefficients {
        // Saturating: beta^t is 0 in f32 long before i32::MAX, so the correction is exact.
        let t = i32::try_from(step.max(1)).unwrap_or(i32::MAX);
        AdamCoefficients {
            step_size: self.lr / (1.0 - self.beta1.powi(t)),
            bias2_sqrt: (1.0 - self.beta2.powi(t)).sqrt(),
            decay: 1.0 - self.lr * self.weight_decay,
        }
    }

    /// torch.optim.Adam(lr, betas=(0.9, 0.999), eps=1e-8)
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// torch.optim.AdamW(lr, weight_decay)
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Adam {
            weight_decay,
            ..Adam::new(lr)
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        if self.m.len() != params.len() {
            self.m = params.iter().map(|p| vec![0.0; p.len()]).collect();
            self.v = params.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        self.step += 1;
        let AdamCoefficients {
            step_size,
            bias2_sqrt,
            decay,
        } = self.coefficients(self.step);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            for (((p, &g), m), v) in p
                .iter_mut()
                .zip(g.iter())
                .zip(m.iter_mut())
                .zip(v.iter_mut())
            {
                if self.weight_decay != 0.0 {
                    *p *= decay;
                }
                *m = self.beta1 * *m + (1.0 - self.beta1) * g;
                *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
                // As torch computes it: denom = sqrt(v) / sqrt(1 - beta2^t) + eps
                let denom = v.sqrt() / bias2_sqrt + self.eps;
                *p -= step_size * *m / denom;
            }
        }
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
}
