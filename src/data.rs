//! Character corpora: the vocabulary, the 90/10 split, and the training batches: sequential
//! (truncated BPTT) or random windows.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::{Result, RnnError};

/// A text and its character vocabulary (sorted, so the same text gives the same ids).
#[derive(Clone, Debug, PartialEq)]
pub struct CharCorpus {
    pub vocab: Vec<char>,
    /// Every character of the text as its vocabulary id.
    pub ids: Vec<usize>,
}

impl CharCorpus {
    pub fn from_text(text: &str) -> Result<Self> {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        if vocab.len() < 2 {
            return Err(RnnError::Config(
                "a character model needs a text with at least 2 distinct characters".into(),
            ));
        }
        let ids = text
            .chars()
            .map(|c| vocab.binary_search(&c).expect("from the text"))
            .collect();
        Ok(CharCorpus { vocab, ids })
    }

    pub fn read(path: &Path) -> Result<Self> {
        Self::from_text(&read_text(path)?)
    }

    /// Ids of `text` in this vocabulary; an unknown character is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        text.chars()
            .map(|c| {
                self.vocab.binary_search(&c).map_err(|_| {
                    RnnError::Config(format!("character {c:?} is not in the vocabulary"))
                })
            })
            .collect()
    }

    /// `encode` that skips the characters outside the vocabulary instead of refusing the text;
    /// returns the ids and each skipped character with its count.
    pub fn encode_known(&self, text: &str) -> (Vec<usize>, BTreeMap<char, usize>) {
        let mut skipped = BTreeMap::new();
        let ids = text
            .chars()
            .filter_map(|c| {
                let id = self.vocab.binary_search(&c).ok();
                if id.is_none() {
                    *skipped.entry(c).or_insert(0) += 1;
                }
                id
            })
            .collect();
        (ids, skipped)
    }

    /// What trained a model on this text: its training split (`split().0`).
    pub fn trained_on(&self) -> TrainedOn {
        TrainedOn::of(self.split().0.iter().map(|&id| [id as u64]))
    }

    /// The first 90% for training, the last 10% for validation.
    pub fn split(&self) -> (&[usize], &[usize]) {
        self.ids.split_at(self.ids.len() * 9 / 10)
    }
}

/// Which data trained a model: its first `count` items (characters, CSV rows), known by the
/// fingerprint of their values, so that scoring that data again can say what the model had
/// already seen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrainedOn {
    /// Leading items that trained the model.
    pub count: usize,
    /// `Fingerprint::hex` of their values.
    pub fingerprint: String,
}

impl TrainedOn {
    /// The record of `items` (each a few values: a character's id, a row's numbers as bits).
    pub fn of<I: IntoIterator<Item = u64>>(items: impl IntoIterator<Item = I>) -> Self {
        let mut hash = Fingerprint::new();
        let mut count = 0;
        for item in items {
            hash.add(item);
            count += 1;
        }
        TrainedOn {
            count,
            fingerprint: hash.hex(),
        }
    }

    /// Whether `items` start with the training data.
    pub fn is_prefix_of<I: IntoIterator<Item = u64>>(
        &self,
        items: impl IntoIterator<Item = I>,
    ) -> bool {
        TrainedOn::of(items.into_iter().take(self.count)) == *self
    }
}

/// 64-bit FNV-1a over a stream of u64 values (their little-endian bytes): a cheap way to know
/// data again, not a cryptographic hash.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint(u64);

impl Fingerprint {
    pub fn new() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }

    pub fn add(&mut self, values: impl IntoIterator<Item = u64>) {
        for value in values {
            for byte in value.to_le_bytes() {
                self.0 = (self.0 ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }

    /// 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

/// Sequential batches for truncated BPTT: the training text cut into B contiguous streams; batch
/// k holds characters [k T, (k+1) T] of every stream, so the state at the end of one batch is the
/// right start for the next. After the last full window the streams start over (state reset).
#[derive(Clone, Debug)]
pub struct SequentialBatches {
    streams: Vec<Vec<usize>>,
    seq: usize,
    per_epoch: usize,
}

impl SequentialBatches {
    pub fn new(ids: &[usize], batch: usize, seq: usize) -> Result<Self> {
        let stream_len = ids.len() / batch.max(1);
        if batch == 0 || seq == 0 || stream_len < seq + 1 {
            return Err(RnnError::Config(format!(
                "a training text of {} characters is too short for batch {batch} x sequence {seq}",
                ids.len()
            )));
        }
        let streams = ids
            .chunks_exact(stream_len)
            .take(batch)
            .map(|c| c.to_vec())
            .collect();
        Ok(SequentialBatches {
            streams,
            seq,
            per_epoch: (stream_len - 1) / seq,
        })
    }

    /// Batches in one pass over the streams.
    pub fn per_epoch(&self) -> usize {
        self.per_epoch
    }

    /// Batch number `step` (counting from 0 across epochs): inputs and targets (T, B), and
    /// whether it starts a new pass (where the carried state must be reset).
    pub fn get(&self, step: usize) -> (Array2<usize>, Array2<usize>, bool) {
        let k = step % self.per_epoch;
        let start = k * self.seq;
        let (seq, batch) = (self.seq, self.streams.len());
        let inputs = Array2::from_shape_fn((seq, batch), |(t, b)| self.streams[b][start + t]);
        let targets = Array2::from_shape_fn((seq, batch), |(t, b)| self.streams[b][start + t + 1]);
        (inputs, targets, k == 0)
    }
}

/// Random batches: each batch is B windows of T + 1 characters at random offsets of the
/// training text, each from a zero state (nothing to carry between unrelated windows). Batch k's
/// offsets come from (seed, k) alone, so a resumed run draws what an uninterrupted one would.
#[derive(Clone, Debug)]
pub struct RandomBatches {
    ids: Vec<usize>,
    batch: usize,
    seq: usize,
    seed: u64,
}

impl RandomBatches {
    pub fn new(ids: &[usize], batch: usize, seq: usize, seed: u64) -> Result<Self> {
        if batch == 0 || seq == 0 || ids.len() < seq + 1 {
            return Err(RnnError::Config(format!(
                "a training text of {} characters is too short for windows of {} characters",
                ids.len(),
                seq + 1
            )));
        }
        Ok(RandomBatches {
            ids: ids.to_vec(),
            batch,
            seq,
            seed,
        })
    }

    /// Batch number `step`: inputs and targets (T, B).
    pub fn get(&self, step: usize) -> (Array2<usize>, Array2<usize>) {
        // One generator per step, keyed by (seed, step): SplitMix-style mixing keeps nearby
        // steps' streams unrelated.
        let key = self.seed
            ^ (step as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(key);
        let last_start = self.ids.len() - (self.seq + 1);
        let starts: Vec<usize> = (0..self.batch)
            .map(|_| rng.random_range(0..=last_start))
            .collect();
        let inputs =
            Array2::from_shape_fn((self.seq, self.batch), |(t, b)| self.ids[starts[b] + t]);
        let targets =
            Array2::from_shape_fn((self.seq, self.batch), |(t, b)| self.ids[starts[b] + t + 1]);
        (inputs, targets)
    }
}

/// How training cuts the text into batches.
#[derive(Clone, Debug)]
pub enum Batches {
    /// Truncated BPTT: the state carried from batch to batch, the gradient cut.
    Sequential(SequentialBatches),
    /// Independent windows, each from a zero state.
    Random(RandomBatches),
}

impl Batches {
    /// Batch number `step`: inputs and targets (T, B), and whether the recurrent state must
    /// start from zero (a new pass of sequential batches; every random batch).
    pub fn get(&self, step: usize) -> (Array2<usize>, Array2<usize>, bool) {
        match self {
            Batches::Sequential(b) => b.get(step),
            Batches::Random(b) => {
                let (inputs, targets) = b.get(step);
                (inputs, targets, true)
            }
        }
    }
}

/// Validation windows: consecutive windows of `seq` + 1 characters (inputs and shifted
/// targets), each evaluated from a zero state; the tail shorter than a window is dropped.
pub fn validation_windows(ids: &[usize], seq: usize) -> Vec<&[usize]> {
    // A window longer than any text (seq + 1 overflowing among them) gives none.
    match seq.checked_add(1) {
        Some(window) if seq > 0 => ids.windows(window).step_by(seq).collect(),
        _ => Vec::new(),
    }
}

/// A UTF-8 text file, after `limits::check_input_file` (a regular file of a bounded size).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = crate::limits::read_input_file(path)?;
    String::from_utf8(bytes).map_err(|e| RnnError::File {
        path: path.into(),
        message: format!("cannot read text: not UTF-8 ({e})"),
    })
}

/// A vocabulary maps id i to its i-th character by binary search: it must be sorted, without
/// repeats, or ids decode to the wrong characters.
pub fn check_vocab(vocab: &[char]) -> std::result::Result<(), String> {
    if vocab.is_empty() {
        return Err("the vocabulary is empty".into());
    }
    match vocab.windows(2).position(|w| w[0] >= w[1]) {
        None => Ok(()),
        Some(i) => Err(format!(
            "the vocabulary is not sorted and unique: {:?} comes before {:?} at {}",
            vocab[i],
            vocab[i + 1],
            i + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_fnv_1a_over_little_endian_bytes() {
        // Reference values of 64-bit FNV-1a (offset basis, and Python over struct.pack('<QQ', 1, 2)).
        assert_eq!(Fingerprint::new().hex(), "cbf29ce484222325");
        let mut hash = Fingerprint::new();
        hash.add([1, 2]);
        assert_eq!(hash.hex(), "7717980363c8e066");
        let trained = TrainedOn::of([[1u64], [2]]);
        assert_eq!(trained.fingerprint, hash.hex());
        assert_eq!(trained.count, 2);
        assert!(trained.is_prefix_of([[1u64], [2], [9]]));
        assert!(!trained.is_prefix_of([[1u64], [3], [2]]));
        assert!(
            !trained.is_prefix_of([[1u64]]),
            "shorter than the training data"
        );
    }

    #[test]
    fn batches_continue_each_stream() {
        let ids: Vec<usize> = (0..20).map(|i| i % 3).collect();
        let batches = SequentialBatches::new(&ids, 2, 3).unwrap();
        assert_eq!(batches.per_epoch(), 3); // streams of 10: windows at 0, 3, 6
        let (x0, y0, first) = batches.get(0);
        let (x1, _, later) = batches.get(1);
        assert!(first && !later);
        assert_eq!(x0.column(0).to_vec(), vec![0, 1, 2]);
        assert_eq!(y0.column(0).to_vec(), vec![1, 2, 0]);
        assert_eq!(x1.column(0).to_vec(), vec![0, 1, 2]);
        assert_eq!(x0.column(1).to_vec(), vec![1, 2, 0]); // stream 1 starts at id 10
        assert!(batches.get(3).2); // a new pass
    }

    #[test]
    fn random_batches_are_text_windows_drawn_again_for_the_same_step() {
        let ids: Vec<usize> = (0..1000).collect();
        let batches = Batches::Random(RandomBatches::new(&ids, 8, 5, 7).unwrap());
        let (x, y, reset) = batches.get(3);
        assert!(reset, "a random batch starts from zero");
        assert_eq!(x.dim(), (5, 8));
        for b in 0..8 {
            // ids are positions: a window is consecutive, its targets one ahead.
            let start = x[[0, b]];
            assert!(start + 5 < 1000);
            for t in 0..5 {
                assert_eq!(x[[t, b]], start + t);
                assert_eq!(y[[t, b]], start + t + 1);
            }
        }
        assert_eq!(batches.get(3).0, x, "step 3 again: the same windows");
        assert_ne!(batches.get(4).0, x, "another step: other windows");
        let other_seed = RandomBatches::new(&ids, 8, 5, 8).unwrap();
        assert_ne!(other_seed.get(3).0, x, "another seed: other windows");
        assert!(RandomBatches::new(&ids[..5], 1, 5, 0).is_err());
    }

    #[test]
    fn corpus_vocabulary_and_split() {
        let corpus = CharCorpus::from_text("abcabcabca").unwrap();
        assert_eq!(corpus.vocab, vec!['a', 'b', 'c']);
        assert_eq!(corpus.split().0.len(), 9);
        assert!(corpus.encode("abz").is_err());
        assert_eq!(
            validation_windows(&[0, 1, 2, 3, 4, 5, 6], 3),
            vec![&[0, 1, 2, 3][..], &[3, 4, 5, 6][..]]
        );
    }
}
