//! Stopping rules: when a streaming run has produced the output the caller wants.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// When to stop a run (DESIGN.md section 3, step 5).
///
/// ```
/// use chords::StopRule;
/// assert_eq!("core-index:1".parse::<StopRule>().unwrap(), StopRule::CoreIndex(1));
/// assert_eq!("residual:0.001".parse::<StopRule>().unwrap(), StopRule::Residual(0.001));
/// assert_eq!("all".parse::<StopRule>().unwrap(), StopRule::All);
/// assert!("core-index:x".parse::<StopRule>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum StopRule {
    /// Stop at the N-th output, counting the preview as 0 (1 = the fastest core's hit).
    CoreIndex(usize),
    /// Stop at the first hit n ≥ 2 with `‖hit_n - hit_{n-1}‖₂ / numel < τ`.
    Residual(f64),
    /// Run until core 0's hit, the sequential solve.
    All,
}

impl StopRule {
    /// Checks the rule can be met by a sampler streaming at most `max_hits` hits.
    pub fn validate(&self, max_hits: usize) -> Result<(), Error> {
        match *self {
            Self::CoreIndex(n) if n > max_hits => Err(Error::StopRule {
                rule: self.to_string(),
                reason: format!("this run streams outputs 0 (preview) to {max_hits}"),
            }),
            _ => Ok(()),
        }
    }
}

impl FromStr for StopRule {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::StopRule {
            rule: text.into(),
            reason: reason.into(),
        };
        match text.split_once(':') {
            None if text == "all" => Ok(Self::All),
            Some(("core-index", n)) => n
                .parse()
                .map(Self::CoreIndex)
                .map_err(|_| bad("N must be a non-negative integer")),
            Some(("residual", t)) => match t.parse::<f64>() {
                Ok(tau) if tau.is_finite() && tau >= 0.0 => Ok(Self::Residual(tau)),
                _ => Err(bad("τ must be a finite number ≥ 0")),
            },
            _ => Err(bad("expected `core-index:N`, `residual:τ` or `all`")),
        }
    }
}

impl fmt::Display for StopRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CoreIndex(n) => write!(f, "core-index:{n}"),
            Self::Residual(t) => write!(f, "residual:{t}"),
            Self::All => f.write_str("all"),
        }
    }
}
