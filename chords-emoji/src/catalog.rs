//! The emoji the model draws: their names, characters and categories, in both styles.
//!
//! The table is `catalog.tsv` beside this crate's sources, written by `chords data` from the
//! emoji-datasource metadata (one line per emoji: short name, other short names, code
//! points, category) and built into the crate. The model is conditioned on one emoji in one
//! [`Style`]: condition `style · count + emoji` ([`condition`]), with one more, the null
//! condition ([`null_condition`]), for classifier-free guidance.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// One emoji of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Emoji {
    /// Its short name, as emoji-datasource spells it (`dog`, `flag-fr`, `+1`).
    pub name: &'static str,
    /// Other short names it answers to (`thumbsup` for `+1`).
    pub aliases: Vec<&'static str>,
    /// The emoji itself.
    pub character: String,
    /// Its category (`Animals & Nature`).
    pub category: &'static str,
}

/// The drawing style: whose pictures the model learned it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Style {
    /// Google's Noto emoji (Apache License 2.0).
    #[default]
    Noto,
    /// Twitter's Twemoji (CC-BY 4.0).
    Twemoji,
}

impl Style {
    /// Both styles, in condition order.
    pub const ALL: [Style; 2] = [Style::Noto, Style::Twemoji];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Style::Noto => "noto",
            Style::Twemoji => "twemoji",
        }
    }

    /// Its position in [`Style::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Style {
    type Err = String;

    /// ```
    /// use chords_emoji::Style;
    /// assert_eq!("twemoji".parse::<Style>(), Ok(Style::Twemoji));
    /// assert!("apple".parse::<Style>().unwrap_err().contains("noto, twemoji"));
    /// ```
    fn from_str(s: &str) -> Result<Self, String> {
        Style::ALL
            .into_iter()
            .find(|style| style.name() == s)
            .ok_or_else(|| format!("unknown style `{s}`; valid styles: noto, twemoji"))
    }
}

/// The built-in table, as `chords data` wrote it.
const CATALOG_TSV: &str = include_str!("../catalog.tsv");

/// Every emoji the model knows, in the order of its conditions.
///
/// ```
/// let dog = &chords_emoji::catalog()[chords_emoji::find_emoji("dog").unwrap()];
/// assert_eq!(dog.character, "🐶");
/// ```
pub fn catalog() -> &'static [Emoji] {
    static CATALOG: OnceLock<Vec<Emoji>> = OnceLock::new();
    CATALOG.get_or_init(|| parse_catalog(CATALOG_TSV))
}

/// Parses `catalog.tsv`: `name \t aliases (comma-separated) \t code points (hex, '-') \t
/// category`. Lines that do not have that form are skipped (the table is built in and
/// tested; see the tests).
fn parse_catalog(text: &'static str) -> Vec<Emoji> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (name, aliases, unified, category) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let character = unified
                .split('-')
                .map(|hex| u32::from_str_radix(hex, 16).ok().and_then(char::from_u32))
                .collect::<Option<String>>()?;
            Some(Emoji {
                name,
                aliases: aliases.split(',').filter(|a| !a.is_empty()).collect(),
                character,
                category,
            })
        })
        .collect()
}

/// The number of conditions the network learns (every emoji in every style); the null
/// condition comes after them.
pub fn conditions() -> usize {
    catalog().len() * Style::ALL.len()
}

/// The null condition of classifier-free guidance.
pub fn null_condition() -> usize {
    conditions()
}

/// The condition of `emoji` (an index into [`catalog`]) drawn in `style`.
///
/// ```
/// use chords_emoji::{Style, condition, condition_parts};
/// let c = condition(12, Style::Twemoji);
/// assert_eq!(condition_parts(c), Some((12, Style::Twemoji)));
/// ```
pub fn condition(emoji: usize, style: Style) -> usize {
    style.index() * catalog().len() + emoji
}

/// The emoji and style of a condition; `None` for the null condition and beyond.
pub fn condition_parts(condition: usize) -> Option<(usize, Style)> {
    let n = catalog().len();
    (condition < conditions()).then(|| (condition % n, Style::ALL[condition / n]))
}

/// The catalogue's emoji whose name, other names or category contain every word of
/// `filter` (case-insensitive), or that are the one emoji `filter` is; all of them for an
/// empty filter. For pickers and listings (`chords emojis dog`).
///
/// ```
/// assert!(chords_emoji::search("flag fr").any(|e| e.aliases.contains(&"flag-fr")));
/// ```
pub fn search(filter: &str) -> impl Iterator<Item = &'static Emoji> {
    let words: Vec<String> = filter
        .split_whitespace()
        .map(|w| w.trim_matches(':').to_lowercase())
        .collect();
    catalog().iter().filter(move |e| {
        words.iter().all(|w| {
            e.name.contains(w.as_str())
                || e.aliases.iter().any(|a| a.contains(w.as_str()))
                || e.category.to_lowercase().contains(w.as_str())
                || e.character == *w
        })
    })
}

/// No emoji matches a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown emoji `{query}`{}", suggestion(.closest))]
#[non_exhaustive]
pub struct UnknownEmoji {
    /// What was asked for.
    pub query: String,
    /// The closest names, best first (empty when none is close).
    pub closest: Vec<&'static str>,
}

fn suggestion(closest: &[&str]) -> String {
    match closest {
        [] => "; `chords emojis` lists the names".into(),
        names => format!(
            "; did you mean {}? (`chords emojis` lists the names)",
            names.join(", ")
        ),
    }
}

/// Longest query that gets a search for close names (longer ones are no typo of a name).
const MAX_SUGGESTED_QUERY: usize = 100;

/// The catalogue index of the emoji a query names: its short name or another of its short
/// names (`thumbsup`), the same between colons (`:dog:`), or the emoji character itself.
/// Case and spaces (as `_`) are forgiven. An unknown name carries the closest names.
///
/// ```
/// use chords_emoji::{catalog, find_emoji};
/// assert_eq!(find_emoji(":dog:"), find_emoji("🐶"));
/// let err = find_emoji("dgo").unwrap_err();
/// assert!(err.closest.contains(&"dog"), "{err}");
/// ```
pub fn find_emoji(query: &str) -> Result<usize, UnknownEmoji> {
    let trimmed = query.trim();
    let key = trimmed
        .strip_prefix(':')
        .and_then(|q| q.strip_suffix(':'))
        .unwrap_or(trimmed)
        .to_lowercase()
        .replace(' ', "_");
    let all = catalog();
    let without_variation = |s: &str| s.replace('\u{fe0f}', "");
    let found = all
        .iter()
        .position(|e| e.name == key)
        .or_else(|| all.iter().position(|e| e.aliases.contains(&key.as_str())))
        .or_else(|| {
            let character = without_variation(trimmed);
            all.iter()
                .position(|e| !character.is_empty() && without_variation(&e.character) == character)
        });
    found.ok_or_else(|| UnknownEmoji {
        query: query.chars().take(MAX_SUGGESTED_QUERY).collect(),
        closest: closest_names(&key),
    })
}

/// Up to five names within a few edits of `key`, closest first; names that contain `key`
/// come next.
fn closest_names(key: &str) -> Vec<&'static str> {
    if key.is_empty() || key.chars().count() > MAX_SUGGESTED_QUERY {
        return Vec::new();
    }
    let budget = (key.chars().count() / 3).clamp(1, 3);
    let mut scored: Vec<(usize, &'static str)> = catalog()
        .iter()
        .flat_map(|e| std::iter::once(e.name).chain(e.aliases.iter().copied()))
        .filter_map(|name| {
            let d = edit_distance(key, name);
            if d <= budget {
                Some((d, name))
            } else if key.len() >= 3 && name.contains(key) {
                Some((budget + 1, name))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.dedup_by_key(|(_, name)| *name);
    scored.into_iter().take(5).map(|(_, name)| name).collect()
}

/// The edit distance between two strings, in characters: insertions, deletions,
/// substitutions and swaps of two neighbours each count one (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the table: two back, one back, this one.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j - 1] + cost)
                .min(previous[j] + 1)
                .min(row[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalogue_is_whole() {
        let all = catalog();
        // Every line of the file became an emoji.
        assert_eq!(all.len(), CATALOG_TSV.lines().count());
        assert_eq!(all.len(), 1906);
        let mut names: Vec<&str> = all.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "names are unique");
        assert!(all.iter().all(|e| !e.character.is_empty()));
    }

    #[test]
    fn queries_find_names_aliases_and_characters() {
        let dog = find_emoji("dog").unwrap();
        assert_eq!(catalog()[dog].name, "dog");
        assert_eq!(find_emoji(":dog:"), Ok(dog));
        assert_eq!(find_emoji(" Dog "), Ok(dog));
        assert_eq!(find_emoji("🐶"), Ok(dog));
        let thumbs = find_emoji("+1").unwrap();
        assert_eq!(find_emoji("thumbsup"), Ok(thumbs));
        // The character with and without the variation selector.
        let heart = find_emoji("heart").unwrap();
        assert_eq!(find_emoji("❤"), Ok(heart));
        assert_eq!(find_emoji("❤\u{fe0f}"), Ok(heart));
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let err = find_emoji("dgo").unwrap_err();
        assert_eq!(err.query, "dgo");
        assert!(err.closest.contains(&"dog"), "{err}");
        assert!(
            err.to_string()
                .starts_with("unknown emoji `dgo`; did you mean")
        );
        let err = find_emoji("grining").unwrap_err();
        assert_eq!(err.closest.first(), Some(&"grinning"), "{err}");
        let err = find_emoji("qqqqqqqqqqqqq").unwrap_err();
        assert!(err.closest.is_empty());
        assert!(err.to_string().contains("chords emojis"));
        // A huge query is cut in the message and gets no edit-distance search.
        let long = "x".repeat(100_000);
        let err = find_emoji(&long).unwrap_err();
        assert_eq!(err.query.len(), MAX_SUGGESTED_QUERY);
        assert!(err.closest.is_empty());
        assert!(find_emoji("").is_err());
    }

    #[test]
    fn conditions_cover_every_emoji_in_every_style() {
        let n = catalog().len();
        assert_eq!(conditions(), 2 * n);
        assert_eq!(condition(0, Style::Noto), 0);
        assert_eq!(condition(0, Style::Twemoji), n);
        assert_eq!(condition_parts(2 * n - 1), Some((n - 1, Style::Twemoji)));
        assert_eq!(condition_parts(null_condition()), None);
    }

    #[test]
    fn search_matches_names_aliases_and_categories() {
        assert_eq!(search("").count(), catalog().len());
        let dogs: Vec<&str> = search("dog").map(|e| e.name).collect();
        assert!(
            dogs.contains(&"dog") && dogs.contains(&"hotdog"),
            "{dogs:?}"
        );
        assert!(search("thumbsup").any(|e| e.name == "+1"));
        assert!(search("🐶").any(|e| e.name == "dog"));
        let flags: Vec<&str> = search("flags FR").map(|e| e.name).collect();
        assert!(
            flags.contains(&"fr"),
            "the French flag, `fr` (also flag-fr): {flags:?}"
        );
        assert_eq!(search("no such emoji at all").count(), 0);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("dog", "dog"), 0);
        assert_eq!(edit_distance("dgo", "dog"), 1, "a swap is one edit");
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("do", "dog"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
