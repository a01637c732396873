//! The emoji categories the model is conditioned on.

/// `(name, category)`: the name used on the command line and the category in the data set's
/// `emoji.json`. The class index is the position here; index `CLASSES.len()` is the null
/// class of classifier-free guidance. ("Component", the skin-tone swatches, is left out.)
pub const CLASSES: [(&str, &str); 9] = [
    ("smileys", "Smileys & Emotion"),
    ("people", "People & Body"),
    ("animals", "Animals & Nature"),
    ("food", "Food & Drink"),
    ("travel", "Travel & Places"),
    ("activities", "Activities"),
    ("objects", "Objects"),
    ("symbols", "Symbols"),
    ("flags", "Flags"),
];

/// The index of the null (unconditional) class.
pub const NULL_CLASS: usize = CLASSES.len();

/// The class index of a command-line name, or an error listing the valid names.
///
/// ```
/// assert_eq!(chords_emoji::class_index("food"), Ok(3));
/// assert!(chords_emoji::class_index("cats").unwrap_err().contains("smileys"));
/// ```
pub fn class_index(name: &str) -> Result<usize, String> {
    CLASSES.iter().position(|(n, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = CLASSES.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown class `{name}`; valid classes: {}",
            names.join(", ")
        )
    })
}

/// The class index of a data-set category, if it is one the model knows.
pub fn category_index(category: &str) -> Option<usize> {
    CLASSES.iter().position(|(_, c)| *c == category)
}
