//! Initialisation sequences: where each core starts, and the schedule of outputs it implies.
//!
//! A sequence `I = [i_0 = 0 < i_1 < … < i_{K-1} < T]` gives core k its starting grid index.
//! Core 0 is the exact sequential solver; faster cores start further along and are
//! rectified by slower ones. Core k (k ≥ 1) first evaluates in round k + 1, the preview
//! arrives after round K, and core k's hit arrives at round `T - i_k + k`
//! (DESIGN.md section 3).

use std::fmt;
use std::str::FromStr;

/// Why a sequence or strategy does not fit a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// Zero cores requested.
    #[error("cores must be at least 1")]
    ZeroCores,
    /// Zero steps requested.
    #[error("steps must be at least 1")]
    ZeroSteps,
    /// The text is not a `-`-separated list of integers.
    #[error("cannot parse initialisation sequence `{text}`: {reason}")]
    Parse {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The first entry is not 0 (core 0 must be the exact sequential solver).
    #[error(
        "initialisation sequence must start at 0 (core 0 is the exact solver), but starts at {first}"
    )]
    NotStartingAtZero {
        /// The first entry.
        first: usize,
    },
    /// Two consecutive entries are not strictly increasing.
    #[error(
        "initialisation sequence must be strictly increasing, but entry {position} ({value}) follows {previous}"
    )]
    NotIncreasing {
        /// 0-based position of the offending entry.
        position: usize,
        /// The entry before it.
        previous: usize,
        /// The offending entry.
        value: usize,
    },
    /// An entry is not a grid index where a core can start.
    #[error(
        "initialisation sequence entry {value} is out of range: entries must be below the step count {steps}"
    )]
    OutOfRange {
        /// The offending entry.
        value: usize,
        /// The step count T.
        steps: usize,
    },
    /// The sequence has a different length than the number of cores.
    #[error(
        "initialisation sequence has {len} entries but there are {cores} cores (one entry per core)"
    )]
    WrongLength {
        /// Entries in the sequence.
        len: usize,
        /// Cores requested.
        cores: usize,
    },
    /// More cores than steps: no strictly increasing sequence exists.
    #[error("{cores} cores need at least {cores} steps, got {steps}")]
    TooManyCores {
        /// Cores requested.
        cores: usize,
        /// Steps requested.
        steps: usize,
    },
    /// The paper gives no sequence for this case.
    #[error("{0}")]
    NoPaperSequence(String),
}

/// How to choose a sequence when none is given explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitStrategy {
    /// The authors' sequences (T = 50: 4 cores 0-8-16-32, 6 cores 0-3-6-12-24-36, 8 cores
    /// 0-2-4-8-16-24-32-40), scaled to other T.
    Paper,
    /// Evenly spaced starts: `i_k = ⌊k·T/K⌋`.
    Uniform,
}

impl FromStr for InitStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "paper" => Ok(Self::Paper),
            "uniform" => Ok(Self::Uniform),
            _ => Err(format!(
                "unknown strategy `{s}` (expected `paper` or `uniform`)"
            )),
        }
    }
}

/// A validated initialisation sequence for a given number of steps.
///
/// ```
/// use chords::InitSequence;
/// let seq = InitSequence::parse("0-2-4-8-16-24-32-40", 50).unwrap();
/// let plan = seq.plan();
/// assert_eq!(plan.preview_round, 8);
/// assert_eq!(plan.hits[0].round, 17); // core 7 first: 50 / 17 ≈ 2.94×
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSequence {
    starts: Vec<usize>,
    steps: usize,
}

impl InitSequence {
    /// Validates `starts` for a run of `steps` steps.
    pub fn new(starts: Vec<usize>, steps: usize) -> Result<Self, InitError> {
        if steps == 0 {
            return Err(InitError::ZeroSteps);
        }
        match starts.first() {
            None => return Err(InitError::ZeroCores),
            Some(&first) if first != 0 => return Err(InitError::NotStartingAtZero { first }),
            Some(_) => {}
        }
        for (position, w) in starts.windows(2).enumerate() {
            if w[1] <= w[0] {
                return Err(InitError::NotIncreasing {
                    position: position + 1,
                    previous: w[0],
                    value: w[1],
                });
            }
        }
        if let Some(&value) = starts.iter().find(|&&v| v >= steps) {
            return Err(InitError::OutOfRange { value, steps });
        }
        Ok(Self { starts, steps })
    }

    /// Parses `0-2-4-8` (entries separated by `-`, `,` or spaces) and validates it.
    pub fn parse(text: &str, steps: usize) -> Result<Self, InitError> {
        let tokens: Vec<&str> = text
            .split(|c: char| c == '-' || c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() {
            return Err(InitError::Parse {
                text: text.into(),
                reason: "it is empty".into(),
            });
        }
        let starts = tokens
            .iter()
            .map(|t| {
                t.parse::<usize>().map_err(|_| InitError::Parse {
                    text: text.into(),
                    reason: format!("`{t}` is not a non-negative integer"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(starts, steps)
    }

    /// Like [`parse`](Self::parse), and checks there is one entry per core.
    pub fn parse_for(text: &str, steps: usize, cores: usize) -> Result<Self, InitError> {
        if cores == 0 {
            return Err(InitError::ZeroCores);
        }
        let seq = Self::parse(text, steps)?;
        if seq.cores() != cores {
            return Err(InitError::WrongLength {
                len: seq.cores(),
                cores,
            });
        }
        Ok(seq)
    }

    /// The sequence a strategy gives for `cores` cores and `steps` steps.
    pub fn from_strategy(
        strategy: InitStrategy,
        steps: usize,
        cores: usize,
    ) -> Result<Self, InitError> {
        if cores == 0 {
            return Err(InitError::ZeroCores);
        }
        if steps == 0 {
            return Err(InitError::ZeroSteps);
        }
        if cores > steps {
            return Err(InitError::TooManyCores { cores, steps });
        }
        match strategy {
            InitStrategy::Uniform => {
                Self::new((0..cores).map(|k| k * steps / cores).collect(), steps)
            }
            InitStrategy::Paper => Self::paper(steps, cores),
        }
    }

    fn paper(steps: usize, cores: usize) -> Result<Self, InitError> {
        let at_50: &[usize] = match cores {
            1 => &[0],
            4 => &[0, 8, 16, 32],
            6 => &[0, 3, 6, 12, 24, 36],
            8 => &[0, 2, 4, 8, 16, 24, 32, 40],
            _ => {
                return Err(InitError::NoPaperSequence(format!(
                    "the paper gives sequences for 4, 6 and 8 cores, not {cores}; \
                     use --strategy uniform or an explicit --init"
                )));
            }
        };
        // Scale the T = 50 sequence to `steps`, rounding to the nearest index.
        let starts: Vec<usize> = at_50.iter().map(|&i| (i * steps + 25) / 50).collect();
        Self::new(starts, steps).map_err(|e| {
            InitError::NoPaperSequence(format!(
                "the paper's {cores}-core sequence does not scale to {steps} steps ({e}); \
                 use --strategy uniform or an explicit --init"
            ))
        })
    }

    /// Number of cores K.
    pub fn cores(&self) -> usize {
        self.starts.len()
    }

    /// Number of steps T.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The starting grid index of each core, slowest (core 0) first.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// The round at which core `k` reaches T: `T - i_k + k` (core 0: T).
    pub fn hit_round(&self, core: usize) -> usize {
        self.steps - self.starts[core] + core
    }

    /// When every output arrives, computed in closed form.
    pub fn plan(&self) -> Plan {
        let mut hits: Vec<PlannedHit> = (0..self.cores())
            .map(|core| {
                let round = self.hit_round(core);
                PlannedHit {
                    core,
                    round,
                    speedup: self.steps as f64 / round as f64,
                }
            })
            .collect();
        // Arrival order: earliest round first; within a round, the faster core first.
        hits.sort_by_key(|h| (h.round, std::cmp::Reverse(h.core)));
        Plan {
            steps: self.steps,
            starts: self.starts.clone(),
            preview_round: self.cores(),
            hits,
        }
    }
}

impl fmt::Display for InitSequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.starts.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("-"))
    }
}

/// The output schedule an initialisation sequence implies.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Plan {
    /// Steps T.
    pub steps: usize,
    /// The sequence.
    pub starts: Vec<usize>,
    /// The round after which the preview (one coarse jump of the fastest core) exists.
    pub preview_round: usize,
    /// Every core's hit, in arrival order.
    pub hits: Vec<PlannedHit>,
}

/// When one core's output arrives.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PlannedHit {
    /// The core.
    pub core: usize,
    /// The round its output is ready.
    pub round: usize,
    /// `T / round`.
    pub speedup: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(text: &str, steps: usize) -> (usize, Vec<(usize, usize)>) {
        let p = InitSequence::parse(text, steps).unwrap().plan();
        (
            p.preview_round,
            p.hits.iter().map(|h| (h.core, h.round)).collect(),
        )
    }

    #[test]
    fn hit_rounds_match_hand_computed_figures() {
        // DESIGN.md's check figures.
        assert_eq!(
            rounds("0-2-4-8-16-24-32-40", 50),
            (
                8,
                vec![
                    (7, 17),
                    (6, 24),
                    (5, 31),
                    (4, 38),
                    (3, 45),
                    (2, 48),
                    (1, 49),
                    (0, 50)
                ]
            )
        );
        // 4 cores, T = 50: 50-32+3 = 21, 50-16+2 = 36, 50-8+1 = 43, 50.
        assert_eq!(
            rounds("0-8-16-32", 50),
            (4, vec![(3, 21), (2, 36), (1, 43), (0, 50)])
        );
        // Adjacent starts finish in the same round, the faster core first: 10-3+2 = 9 = 10-2+1.
        assert_eq!(rounds("0-2-3", 10), (3, vec![(2, 9), (1, 9), (0, 10)]));
        // One core is the sequential solve.
        assert_eq!(rounds("0", 7), (1, vec![(0, 7)]));
        let p = InitSequence::parse("0-2-4-8-16-24-32-40", 50)
            .unwrap()
            .plan();
        assert!((p.hits[0].speedup - 50.0 / 17.0).abs() < 1e-12);
    }

    #[test]
    fn strategies() {
        let paper = |k| {
            InitSequence::from_strategy(InitStrategy::Paper, 50, k)
                .unwrap()
                .to_string()
        };
        assert_eq!(paper(8), "0-2-4-8-16-24-32-40");
        assert_eq!(paper(6), "0-3-6-12-24-36");
        assert_eq!(paper(4), "0-8-16-32");
        let scaled = InitSequence::from_strategy(InitStrategy::Paper, 100, 8).unwrap();
        assert_eq!(scaled.to_string(), "0-4-8-16-32-48-64-80");
        let uniform = InitSequence::from_strategy(InitStrategy::Uniform, 50, 8).unwrap();
        assert_eq!(uniform.to_string(), "0-6-12-18-25-31-37-43");
        assert!(matches!(
            InitSequence::from_strategy(InitStrategy::Paper, 50, 3),
            Err(InitError::NoPaperSequence(_))
        ));
        assert!(matches!(
            InitSequence::from_strategy(InitStrategy::Paper, 5, 8),
            Err(InitError::TooManyCores { .. })
        ));
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(
            InitSequence::parse("1-2-3", 10),
            Err(InitError::NotStartingAtZero { first: 1 })
        );
        assert_eq!(
            InitSequence::parse("0-4-4", 10),
            Err(InitError::NotIncreasing {
                position: 2,
                previous: 4,
                value: 4
            })
        );
        assert_eq!(
            InitSequence::parse("0-4-10", 10),
            Err(InitError::OutOfRange {
                value: 10,
                steps: 10
            })
        );
        assert_eq!(
            InitSequence::parse_for("0-4", 10, 3),
            Err(InitError::WrongLength { len: 2, cores: 3 })
        );
        assert_eq!(
            InitSequence::parse_for("0", 10, 0),
            Err(InitError::ZeroCores)
        );
        assert_eq!(InitSequence::parse("0", 0), Err(InitError::ZeroSteps));
        assert!(matches!(
            InitSequence::parse("0-x", 10),
            Err(InitError::Parse { .. })
        ));
        assert!(matches!(
            InitSequence::parse("", 10),
            Err(InitError::Parse { .. })
        ));
        assert_eq!(
            InitSequence::parse("0--3", 10).map(|s| s.to_string()),
            Ok("0-3".into())
        );
    }
}
