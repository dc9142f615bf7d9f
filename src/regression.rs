//! Regression on a table read row by row (a time series): a many-to-one model over a look-back
//! window of input columns forecasts the target column's next value. Holds the transform from
//! raw column values to model inputs and back, so that a checkpoint applies to raw CSV rows
//! (`rnn-wgpu run`), and the checkpoint itself.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use ndarray::Array3;

use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::data::TrainedOn;
use crate::error::{Result, RnnError};
use crate::model::Rnn;
use crate::nn::{Linear, ManyToOne};
use crate::tensor_file::{TensorFile, write_f32};

pub const FORMAT: &str = "rnn-wgpu-regression/1";

/// The head's parameter names, after the stack's PyTorch names.
const HEAD: &str = "head";

/// How one column's raw values become model values: optionally the log of each value's ratio
/// to the previous row's (for series that grow, whose later values lie outside anything seen in
/// training), then standardised with the training rows' mean and standard deviation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnTransform {
    pub column: String,
    pub log_change: bool,
    pub mean: f64,
    pub std: f64,
}

impl ColumnTransform {
    /// Fits mean and standard deviation to `raw` (the training rows, in order).
    pub fn fit(column: &str, log_change: bool, raw: &[f64]) -> Result<Self> {
        let mut unscaled = ColumnTransform {
            column: column.into(),
            log_change,
            mean: 0.0,
            std: 1.0,
        };
        let values: Vec<f64> = (0..raw.len())
            .filter_map(|i| unscaled.to_model(raw, i))
            .collect::<Result<_>>()?;
        if values.len() < 2 {
            return Err(RnnError::Config(format!(
                "column '{column}': {} usable training values, at least 2 needed",
                values.len()
            )));
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        unscaled.mean = mean;
        unscaled.std = if var > 0.0 { var.sqrt() } else { 1.0 };
        Ok(unscaled)
    }

    /// The model value of row `i` of `raw`; `None` for the first row of a log change (it has
    /// no previous row).
    pub fn to_model(&self, raw: &[f64], i: usize) -> Option<Result<f64>> {
        let previous = i.checked_sub(1).map(|p| raw[p]);
        self.model_value(previous, raw[i], i)
    }

    /// The model value of `value`, read at `row` after `previous`; `None` for a log change
    /// without a previous value.
    fn model_value(&self, previous: Option<f64>, value: f64, row: usize) -> Option<Result<f64>> {
        let value = if self.log_change {
            let previous = previous?;
            let ratio = value / previous;
            if !(ratio.is_finite() && ratio > 0.0) {
                return Some(Err(RnnError::Config(format!(
                    "column '{}', row {row}: log change of {previous} -> {value} is undefined (values must be positive)",
                    self.column
                ))));
            }
            ratio.ln()
        } else {
            value
        };
        Some(Ok((value - self.mean) / self.std))
    }

    /// The raw value a model value `y` stands for, the previous row's raw value being `previous`.
    pub fn to_raw(&self, y: f64, previous: f64) -> f64 {
        let value = y * self.std + self.mean;
        if self.log_change {
            previous * value.exp()
        } else {
            value
        }
    }
}

/// What a regression model reads and predicts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegressionSpec {
    pub mode: Mode,
    pub hidden: usize,
    pub layers: usize,
    /// Rows in each window the model reads.
    pub look_back: usize,
    pub inputs: Vec<ColumnTransform>,
    pub target: ColumnTransform,
    /// The rows that trained the model (their values in `columns()` order, as `f64` bits), where
    /// known: `eval` on a file that starts with them scores the rows after them apart too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<TrainedOn>,
}

/// The longest look-back window a spec may ask for (rows held per forecast).
pub const MAX_LOOK_BACK: usize = 1 << 20;

impl RegressionSpec {
    /// Refuses what a file could claim but no fitted model has: no input column, a window of
    /// 0 or absurdly many rows, a transform that is not finite or divides by a std <= 0.
    pub fn validate(&self) -> Result<()> {
        if self.inputs.is_empty() {
            return Err(RnnError::Config(
                "a regression spec without input columns".into(),
            ));
        }
        if !(1..=MAX_LOOK_BACK).contains(&self.look_back) {
            return Err(RnnError::Config(format!(
                "look_back {} is outside 1..={MAX_LOOK_BACK}",
                self.look_back
            )));
        }
        for t in self.inputs.iter().chain([&self.target]) {
            if !(t.mean.is_finite() && t.std.is_finite() && t.std > 0.0) {
                return Err(RnnError::Config(format!(
                    "column '{}': mean {} and std {} must be finite, the std above 0",
                    crate::limits::printable(&t.column),
                    t.mean,
                    t.std
                )));
            }
        }
        self.rnn_config().validate()
    }

    /// The record of `rows` (each in `columns()` order) as the rows that trained a model.
    pub fn trained_rows(rows: &[Vec<f64>]) -> TrainedOn {
        TrainedOn::of(rows.iter().map(|row| row.iter().map(|v| v.to_bits())))
    }

    pub fn rnn_config(&self) -> RnnConfig {
        RnnConfig::new(self.mode, self.inputs.len(), self.hidden).layers(self.layers)
    }

    /// The columns a table must have: the inputs', then the target's if not among them.
    pub fn columns(&self) -> Vec<&str> {
        let mut columns: Vec<&str> = self.inputs.iter().map(|c| c.column.as_str()).collect();
        if !columns.contains(&self.target.column.as_str()) {
            columns.push(&self.target.column);
        }
        columns
    }
}

/// A regression model: the spec and a many-to-one stack with a linear head (H -> 1).
#[derive(Clone, Debug)]
pub struct Regressor {
    pub spec: RegressionSpec,
    pub model: ManyToOne,
}

impl Regressor {
    /// A freshly initialised model (PyTorch's initialisation, from `seed`).
    pub fn new(spec: RegressionSpec, seed: u64) -> Result<Self> {
        let rnn = Rnn::<f32>::new(spec.rnn_config(), seed)?;
        let head = Linear::new(spec.hidden, 1, seed.wrapping_add(1))?;
        Ok(Regressor {
            model: ManyToOne::new(rnn, head)?,
            spec,
        })
    }

    /// Model inputs of every row of `table` ((rows, columns()) raw values) from which all
    /// input columns have a value: (first such row, values (rows', I)).
    pub fn encode_inputs(&self, table: &[Vec<f64>]) -> Result<(usize, Vec<Vec<f32>>)> {
        let mut encoded = Vec::new();
        let mut first = None;
        for (i, row) in table.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| table[p].as_slice());
            if let Some(inputs) = self.encode_row(previous, row, i) {
                first.get_or_insert(i);
                encoded.push(inputs?);
            }
        }
        Ok((first.unwrap_or(table.len()), encoded))
    }

    /// Model inputs (I) of `row` (raw values in `columns()` order), number `index`, read after
    /// `previous`; `None` while a log-change column has no previous row.
    fn encode_row(
        &self,
        previous: Option<&[f64]>,
        row: &[f64],
        index: usize,
    ) -> Option<Result<Vec<f32>>> {
        let columns = self.spec.columns();
        self.spec
            .inputs
            .iter()
            .map(|transform| {
                let at = column_index(&columns, &transform.column);
                let value = transform.model_value(previous.map(|p| p[at]), row[at], index)?;
                Some(value.map(|v| v as f32))
            })
            .collect()
    }

    /// The model value of the next target from `window` (look_back rows of model inputs).
    pub fn predict_window(&self, window: &[Vec<f32>]) -> Result<f64> {
        let x = Array3::from_shape_fn((window.len(), 1, self.spec.inputs.len()), |(t, _, i)| {
            window[t][i]
        });
        Ok(self.model.predict(x.view())?[[0, 0]] as f64)
    }

    /// Parameters under PyTorch's names (`weight_ih_l0`, ..., `head.weight`, `head.bias`).
    fn named(&self) -> Vec<(String, ndarray::ArrayViewD<'_, f32>)> {
        let mut out = self.model.rnn.params().named(self.model.rnn.config());
        out.push((
            format!("{HEAD}.weight"),
            self.model.head.weight.view().into_dyn(),
        ));
        out.push((
            format!("{HEAD}.bias"),
            self.model.head.bias.view().into_dyn(),
        ));
        out
    }

    /// Writes the parameters and the spec (as JSON metadata) atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            (
                "spec".to_string(),
                serde_json::to_string(&self.spec).expect("a spec serialises"),
            ),
        ]);
        write_f32(path, &self.named(), meta)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let file = TensorFile::read(path)?;
        Self::from_file(&file)
    }

    /// A regression checkpoint already read (see `TensorFile::meta("format")`).
    pub fn from_file(file: &TensorFile) -> Result<Self> {
        let format = file.meta("format")?;
        if format != FORMAT {
            return Err(RnnError::File {
                path: file.path().into(),
                message: format!("format '{format}', expected '{FORMAT}'"),
            });
        }
        let spec: RegressionSpec =
            serde_json::from_str(file.meta("spec")?).map_err(|e| RnnError::File {
                path: file.path().into(),
                message: format!("regression spec: {e}"),
            })?;
        spec.validate()?;
        let lookup = |name: &str| file.contains(name).then(|| file.f32(name)).transpose();
        let config = spec.rnn_config();
        let params = crate::params::RnnParams::from_lookup(&config, lookup)?;
        let head = Linear::from_lookup(HEAD, (spec.hidden, 1), lookup)?;
        Ok(Regressor {
            model: ManyToOne::new(Rnn::from_params(config, params)?, head)?,
            spec,
        })
    }
}

fn column_index(columns: &[&str], name: &str) -> usize {
    columns
        .iter()
        .position(|c| *c == name)
        .expect("columns() lists every input and the target")
}

/// Forecasts one row at a time: after each row of raw values (in `RegressionSpec::columns`
/// order) comes the forecast of the target's next value, once a whole window has been read.
pub struct Forecaster<'a> {
    regressor: &'a Regressor,
    /// Rows read so far.
    rows: usize,
    /// The last row read, raw (a log change needs it).
    previous: Option<Vec<f64>>,
    /// Model inputs of the last rows, at most look_back.
    window: VecDeque<Vec<f32>>,
}

impl<'a> Forecaster<'a> {
    pub fn new(regressor: &'a Regressor) -> Self {
        Forecaster {
            regressor,
            rows: 0,
            previous: None,
            window: VecDeque::new(),
        }
    }

    /// Reads one row; returns the forecast of the next row's target, or `None` while fewer
    /// rows than a window needs have been read.
    pub fn push(&mut self, row: Vec<f64>) -> Result<Option<f64>> {
        let spec = &self.regressor.spec;
        let columns = spec.columns();
        if row.len() != columns.len() {
            return Err(RnnError::Shape {
                tensor: "forecaster row".into(),
                expected: format!("({}) values: {}", columns.len(), columns.join(", ")),
                got: vec![row.len()],
            });
        }
        let encoded = self
            .regressor
            .encode_row(self.previous.as_deref(), &row, self.rows)
            .transpose()?;
        self.rows += 1;
        let last = row[column_index(&columns, &spec.target.column)];
        self.previous = Some(row);
        if let Some(inputs) = encoded {
            self.window.push_back(inputs);
            if self.window.len() > spec.look_back {
                self.window.pop_front();
            }
        }
        if self.window.len() < spec.look_back {
            return Ok(None);
        }
        let y = self
            .regressor
            .predict_window(self.window.make_contiguous())?;
        Ok(Some(spec.target.to_raw(y, last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_change_transform_inverts_and_standardises() {
        // Changes ln(1.1) and ln(1.2): mean ln(1.1 * 1.2) / 2, standard deviation
        // (ln 1.2 - ln 1.1) / 2.
        let raw = [100.0, 110.0, 132.0];
        let t = ColumnTransform::fit("p", true, &raw).unwrap();
        let (a, b) = (1.1f64.ln(), 1.2f64.ln());
        assert!((t.mean - (a + b) / 2.0).abs() < 1e-12);
        assert!((t.std - (b - a) / 2.0).abs() < 1e-12);
        assert!(t.to_model(&raw, 0).is_none(), "the first row has no change");
        assert!((t.to_model(&raw, 1).unwrap().unwrap() + 1.0).abs() < 1e-9);
        assert!((t.to_model(&raw, 2).unwrap().unwrap() - 1.0).abs() < 1e-9);
        // Model value 1 after 132: 132 * 1.2.
        assert!((t.to_raw(1.0, 132.0) - 158.4).abs() < 1e-9);
        // A non-positive value has no log change: an error naming the column and row.
        match t.to_model(&[1.0, -1.0], 1) {
            Some(Err(RnnError::Config(what))) => assert!(what.contains("'p', row 1"), "{what}"),
            other => panic!("{other:?}"),
        }
    }
}
