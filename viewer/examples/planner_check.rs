//! Measurement: the planner calibrated on the emoji model against the paper's sequences.
//!
//! For K = 4, 6 and 8 (T = 50, Euler, the paper sequence's speed-up) the planner scores
//! candidates on calibration seeds 1000, 1001, …; the planned and the paper sequence (and
//! any sequence given after `--`) are then scored on held-out seeds 0..N: the first hit's
//! RMSE against the sequential solve, averaged over the seeds, and the planning time.
//!
//! ```sh
//! cargo run --release --example planner_check -- [HELD_OUT=8] [CALIBRATION=2] [SEQ ...]
//! ```
//!
//! `CORES=8` limits K; `JUDGE_FROM=S` judges on seeds S..S+N instead; `NO_PLAN=1` scores the paper's and the given sequences only;
//! `SURROGATE=1` scores them on the planner's test ODE instead; `GRID4=2` scores every
//! K = 4 sequence `0-a-b-32` with `a`, `b` on a grid of 2 and prints the best 15.

use std::sync::Arc;
use std::time::Instant;

use chords::planner::{self, ModelScorer, Scorer};
use chords::{Euler, FlowSchedule, InitSequence, InitStrategy, Solver, noise};
use chords_emoji::{EmojiModel, NUMEL, cpu_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let held_out: u64 = args.first().map_or(Ok(8), |a| a.parse())?;
    let calibration: u64 = args.get(1).map_or(Ok(2), |a| a.parse())?;
    let extra: Vec<InitSequence> = args
        .iter()
        .skip(2)
        .map(|s| InitSequence::parse(s, 50))
        .collect::<Result<_, _>>()?;
    let model = EmojiModel::shipped(&cpu_device())?.with_batching(true);
    let solver: Arc<dyn Solver> = Arc::new(Euler::new(FlowSchedule::new(50, 1.0)?));
    let starts = |seeds: std::ops::Range<u64>| -> Vec<Vec<f32>> {
        seeds
            .map(|s| {
                let mut x = noise::gaussian(s, NUMEL);
                noise::scale_to_initial(solver.as_ref(), &mut x);
                x
            })
            .collect()
    };
    // The planner's runs call the model once per core, each on its own thread.
    let unbatched = model.clone().with_batching(false);
    let mut tuning =
        ModelScorer::new(&unbatched, solver.clone(), starts(1000..1000 + calibration))?;
    let surrogate = planner::Surrogate::new(50)?;
    let mut judge: Box<dyn Scorer> = if std::env::var_os("SURROGATE").is_some() {
        Box::new(surrogate.scorer()?)
    } else {
        let from: u64 = std::env::var("JUDGE_FROM").map_or(Ok(0), |s| s.parse())?;
        Box::new(ModelScorer::new(
            &model,
            solver.clone(),
            starts(from..from + held_out),
        )?)
    };
    println!("| K | sequence | first-hit RMSE (seeds 0..{held_out}) | vs paper | planning (s) |");
    println!("|---:|---|---:|---:|---:|");
    if let Some(step) = std::env::var("GRID4")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        // Every K = 4 sequence 0-a-b-32 on a grid of `step`, scored on the held-out seeds.
        let paper = InitSequence::from_strategy(InitStrategy::Paper, 50, 4)?;
        let base = judge.score(&paper)?;
        let mut all = Vec::new();
        for a in (step..32).step_by(step) {
            for b in ((a + step)..32).step_by(step) {
                let seq = InitSequence::new(vec![0, a, b, 32], 50)?;
                let s = judge.score(&seq)?;
                eprintln!("{seq} {:.3}", s / base);
                all.push((s / base, seq));
            }
        }
        all.sort_by(|x, y| x.0.total_cmp(&y.0));
        for (r, seq) in all.iter().take(15) {
            println!("{seq} {r:.3}");
        }
        return Ok(());
    }
    let ks: Vec<usize> = match std::env::var("CORES") {
        Ok(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        Err(_) => vec![4, 6, 8],
    };
    for k in ks {
        let paper = InitSequence::from_strategy(InitStrategy::Paper, 50, k)?;
        let speedup = paper.plan().hits[0].speedup;
        let base = judge.score(&paper)?;
        println!("| {k} | {paper} (paper) | {base:.4e} | 1.000 | – |");
        if std::env::var_os("NO_PLAN").is_none() {
            let started = Instant::now();
            let planned = planner::plan(50, k, speedup, &mut tuning, &mut |_, _| {})?;
            let planning = started.elapsed().as_secs_f64();
            let s = judge.score(&planned)?;
            println!(
                "| {k} | {planned} (planned) | {s:.4e} | {:.3} | {planning:.1} |",
                s / base
            );
        }
        for seq in extra.iter().filter(|s| s.cores() == k) {
            let s = judge.score(seq)?;
            println!("| {k} | {seq} | {s:.4e} | {:.3} | – |", s / base);
        }
    }
    Ok(())
}
