//! The initialisation-sequence parser on arbitrary text and step counts: a valid sequence
//! (starting at 0, strictly increasing, below T) or an error, never a panic; its plan has
//! one hit per core, fastest first (two cores may hit in the same round), the last at
//! round T.
#![no_main]

use chords::InitSequence;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u16)| {
    let (text, steps) = (input.0, input.1 as usize);
    let Ok(seq) = InitSequence::parse(text, steps) else {
        return;
    };
    let starts = seq.starts();
    assert_eq!(starts[0], 0);
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
    assert!(starts.iter().all(|&s| s < steps));
    assert_eq!(InitSequence::parse(&seq.to_string(), steps).ok(), Some(seq.clone()));
    let plan = seq.plan();
    assert_eq!(plan.hits.len(), seq.cores());
    assert_eq!(plan.hits.last().map(|h| h.round), Some(steps));
    assert!(plan.hits.windows(2).all(|w| w[0].round <= w[1].round));
});
