//! `chords plan`: the output schedule of an initialisation sequence, no model involved.

use anyhow::Result;
use chords::{InitSequence, InitStrategy};
use serde_json::json;

use crate::cli::{PlanArgs, ScheduleArgs, Strategy};

/// The sequence the schedule arguments describe, validated.
pub fn sequence(args: &ScheduleArgs) -> Result<InitSequence> {
    if args.cores == 0 {
        anyhow::bail!("--cores must be at least 1");
    }
    if args.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let seq = match &args.init {
        Some(text) => InitSequence::parse_for(text, args.steps, args.cores)?,
        None => {
            let strategy = match args.strategy {
                Strategy::Paper => InitStrategy::Paper,
                Strategy::Uniform => InitStrategy::Uniform,
            };
            InitSequence::from_strategy(strategy, args.steps, args.cores)?
        }
    };
    Ok(seq)
}

/// Prints the plan as a table or as JSON.
pub fn run(args: &PlanArgs) -> Result<()> {
    let plan = sequence(&args.schedule)?.plan();
    if args.json {
        let hits: Vec<_> = plan
            .hits
            .iter()
            .map(|h| json!({"core": h.core, "round": h.round, "speedup": (h.speedup * 100.0).round() / 100.0}))
            .collect();
        let out = json!({
            "steps": plan.steps,
            "cores": plan.starts.len(),
            "init": plan.starts,
            "preview_round": plan.preview_round,
            "hits": hits,
        });
        println!("{out}");
        return Ok(());
    }
    let seq: Vec<String> = plan.starts.iter().map(ToString::to_string).collect();
    println!(
        "steps {}, cores {}, init {}",
        plan.steps,
        plan.starts.len(),
        seq.join("-")
    );
    println!("preview after round {}", plan.preview_round);
    println!(
        "{:>6} {:>6} {:>6} {:>8}",
        "output", "core", "round", "speedup"
    );
    for (n, h) in plan.hits.iter().enumerate() {
        println!(
            "{:>6} {:>6} {:>6} {:>7.2}x",
            n + 1,
            h.core,
            h.round,
            h.speedup
        );
    }
    Ok(())
}
