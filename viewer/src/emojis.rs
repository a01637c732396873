//! `chords emojis`: the emoji the built-in model draws, by name.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

/// Arguments of `chords emojis`.
#[derive(Debug, clap::Args)]
pub struct EmojisArgs {
    /// Only the emoji whose name, other names or category contain every word of this
    /// (e.g. `dog`, `flag`, `animals`).
    pub filter: Option<String>,
    /// Print a JSON array of {"name", "char", "category"} instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs `chords emojis`.
pub fn run(args: &EmojisArgs) -> Result<()> {
    let found: Vec<&chords_emoji::Emoji> =
        chords_emoji::search(args.filter.as_deref().unwrap_or("")).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<_> = found
            .iter()
            .map(|e| json!({"name": e.name, "char": e.character, "category": e.category}))
            .collect();
        writeln!(out, "{}", serde_json::to_string(&list)?)?;
        return Ok(());
    }
    for e in &found {
        let aliases = if e.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also {})", e.aliases.join(", "))
        };
        writeln!(
            out,
            "{}  {}{aliases}  [{}]",
            e.character, e.name, e.category
        )?;
    }
    if found.is_empty() {
        eprintln!("no emoji matches; `chords emojis` lists all of them");
    } else {
        eprintln!(
            "{} emoji; draw one with `chords render --emoji NAME [--style noto|twemoji]`",
            found.len()
        );
    }
    Ok(())
}
