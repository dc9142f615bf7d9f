//! Encoder-decoder (N vs M, the seed notes' last structure) trained with teacher forcing on a
//! task it generates: reverse a string of digits. The encoder GRU reads the digits; its final
//! state starts the decoder GRU, which is fed the previous target digit (teacher forcing) while
//! training and its own previous guess when tested. Reports exact-match accuracy on fresh strings.
//!
//!     cargo run --release --example seq2seq

use ndarray::{Array2, Array3, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::nn::{Linear, cross_entropy};
use rnn_wgpu::optim::{Adam, clip_and_step};
use rnn_wgpu::{Mode, OutputGrads, Rnn, RnnConfig};

const DIGITS: usize = 10;
const GO: usize = DIGITS; // the decoder's first input
const LEN: usize = 6;
const HIDDEN: usize = 128;

/// (T, B) tokens -> (T, B, vocab) one-hot
fn one_hot(tokens: &Array2<usize>, vocab: usize) -> Array3<f32> {
    let (t, b) = tokens.dim();
    let mut x = Array3::zeros((t, b, vocab));
    for ((i, j), &k) in tokens.indexed_iter() {
        x[[i, j, k]] = 1.0;
    }
    x
}

/// Random digit strings (LEN, B) and their reversals.
fn batch(rng: &mut StdRng, b: usize) -> (Array2<usize>, Array2<usize>) {
    let source = Array2::from_shape_simple_fn((LEN, b), || rng.random_range(0..DIGITS));
    let mut target = source.clone();
    target.invert_axis(Axis(0));
    (source, target)
}

struct Seq2Seq {
    encoder: Rnn<f32>,
    decoder: Rnn<f32>,
    head: Linear,
}

impl Seq2Seq {
    /// Greedy decoding of every column of `source` (LEN, B).
    fn translate(&self, source: &Array2<usize>) -> rnn_wgpu::Result<Array2<usize>> {
        let b = source.dim().1;
        let mut state = self
            .encoder
            .forward(one_hot(source, DIGITS).view(), None, None)?
            .h_n;
        let mut input = Array2::from_elem((1, b), GO);
        let mut out = Array2::zeros((LEN, b));
        for t in 0..LEN {
            let step = self.decoder.forward(
                one_hot(&input, DIGITS + 1).view(),
                Some(state.view()),
                None,
            )?;
            let logits = self.head.forward(step.output.index_axis(Axis(0), 0))?;
            for (j, row) in logits.outer_iter().enumerate() {
                let guess = (0..DIGITS)
                    .max_by(|&x, &y| row[x].total_cmp(&row[y]))
                    .expect("digits");
                out[[t, j]] = guess;
                input[[0, j]] = guess;
            }
            state = step.h_n;
        }
        Ok(out)
    }
}

fn main() -> rnn_wgpu::Result<()> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut model = Seq2Seq {
        encoder: Rnn::new(RnnConfig::new(Mode::Gru, DIGITS, HIDDEN), 1)?,
        decoder: Rnn::new(RnnConfig::new(Mode::Gru, DIGITS + 1, HIDDEN), 2)?,
        head: Linear::new(HIDDEN, DIGITS, 3)?,
    };
    let mut adam = Adam::new(3e-3);
    let b = 64;
    for step in 1..=1500 {
        let (source, target) = batch(&mut rng, b);
        // Teacher forcing: the decoder reads GO, then the true previous digit.
        let mut decoder_input = Array2::from_elem((LEN, b), GO);
        decoder_input
            .slice_mut(ndarray::s![1.., ..])
            .assign(&target.slice(ndarray::s![..LEN - 1, ..]));
        let (encoded, enc_tape) =
            model
                .encoder
                .forward_train(one_hot(&source, DIGITS).view(), None, None)?;
        let (decoded, dec_tape) = model.decoder.forward_train(
            one_hot(&decoder_input, DIGITS + 1).view(),
            Some(encoded.h_n.view()),
            None,
        )?;
        let flat = decoded
            .output
            .into_shape_with_order((LEN * b, HIDDEN))
            .expect("contiguous");
        let logits = model.head.forward(flat.view())?;
        let targets: Vec<usize> = target.iter().copied().collect();
        let (loss, grad_logits) = cross_entropy(logits.view(), &targets)?;
        let (mut head_grads, grad_flat) = model.head.backward(flat.view(), grad_logits.view())?;
        let grad_out = grad_flat
            .into_shape_with_order((LEN, b, HIDDEN))
            .expect("contiguous");
        let mut dec_grads = model.decoder.backward(
            dec_tape,
            OutputGrads {
                output: Some(grad_out.view()),
                ..Default::default()
            },
            false,
        )?;
        // The decoder's initial state is the encoder's final one: its gradient flows back there.
        let mut enc_grads = model.encoder.backward(
            enc_tape,
            OutputGrads {
                h_n: Some(dec_grads.h0.view()),
                ..Default::default()
            },
            false,
        )?;
        let mut grads = enc_grads.params.slices_mut();
        grads.extend(dec_grads.params.slices_mut());
        grads.extend(head_grads.slices_mut());
        let mut params = model.encoder.params_mut().slices_mut();
        params.extend(model.decoder.params_mut().slices_mut());
        params.extend(model.head.slices_mut());
        clip_and_step(&mut adam, params, grads, Some(1.0));
        if step % 250 == 0 {
            println!("step {step:5}  loss {loss:.4}");
        }
    }
    let (source, target) = batch(&mut StdRng::seed_from_u64(99), 1000);
    let guess = model.translate(&source)?;
    let exact = guess
        .axis_iter(Axis(1))
        .zip(target.axis_iter(Axis(1)))
        .filter(|(g, t)| g == t)
        .count();
    let show: String = source.column(0).iter().map(|d| d.to_string()).collect();
    let shown: String = guess.column(0).iter().map(|d| d.to_string()).collect();
    println!("e.g. {show} -> {shown}");
    println!(
        "exact-match accuracy on 1000 fresh strings of {LEN} digits: {:.1}%",
        exact as f64 / 10.0
    );
    Ok(())
}
