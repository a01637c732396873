//! The emoji picker: a drop-down of the catalogue with a search field.

use chords_emoji::{Style, search};
use eframe::egui;

/// Most matches the drop-down lists at once (type more to narrow them down).
const MAX_LISTED: usize = 120;

/// The emoji drop-down: `selected` is the chosen emoji's name, `filter` the search text
/// (kept between frames by the caller).
pub fn emoji_picker(ui: &mut egui::Ui, selected: &mut String, filter: &mut String) {
    egui::ComboBox::from_id_salt("emoji")
        .selected_text(selected.clone())
        .height(360.0)
        .show_ui(ui, |ui| {
            ui.add(
                egui::TextEdit::singleline(filter)
                    .hint_text("search names…")
                    .desired_width(180.0),
            );
            let mut shown = 0;
            for emoji in search(filter) {
                if shown == MAX_LISTED {
                    ui.weak("… type to narrow the list");
                    break;
                }
                ui.selectable_value(
                    selected,
                    emoji.name.to_string(),
                    format!("{} {}", emoji.character, emoji.name),
                )
                .on_hover_text(emoji.category);
                shown += 1;
            }
            if shown == 0 {
                ui.weak("no emoji matches");
            }
        });
}

/// The style drop-down.
pub fn style_picker(ui: &mut egui::Ui, style: &mut Style) {
    egui::ComboBox::from_id_salt("style")
        .selected_text(style.name())
        .show_ui(ui, |ui| {
            for choice in Style::ALL {
                ui.selectable_value(style, choice, choice.name());
            }
        });
}
