//! Value parsers for numeric options: each names the rule it enforces, so a bad value gets
//! clap's one-line error (`invalid value '0' for '--seq <SEQ>': must be at least 1`).

/// A count of at least 1 (sizes, steps).
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("must be a whole number of at least 1".into()),
    }
}

/// A finite number above 0 (learning rates, clip norms, temperatures), as PyTorch's
/// optimizers require of `lr`.
pub fn positive_f32(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("must be a finite number above 0".into()),
    }
}

/// A finite number of seconds above 0.
pub fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("must be a finite number of seconds above 0".into()),
    }
}

/// A dropout probability in [0, 1), as `torch.nn.LSTM(dropout=p)` accepts.
pub fn probability(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err("must be a probability in [0, 1)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_parser_names_its_rule() {
        assert_eq!(positive_count("0").unwrap_err(), "must be at least 1");
        assert_eq!(positive_count("3"), Ok(3));
        assert!(positive_count("-1").is_err() && positive_count("x").is_err());
        for bad in ["0", "-1", "NaN", "inf", "abc"] {
            assert!(positive_f32(bad).is_err(), "{bad}");
            assert!(positive_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(positive_f32("2e-3"), Ok(2e-3));
        assert_eq!(probability("0"), Ok(0.0));
        assert!(probability("1").is_err() && probability("-0.1").is_err());
    }
}
