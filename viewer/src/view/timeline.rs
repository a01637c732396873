//! The timeline: which grid index each core is at after every round, with spawns,
//! rectifications, the preview and the hits marked.

use eframe::egui::{self, Align2, Color32, FontId, Pos2, Rect, Sense, Shape, Stroke, Vec2, pos2};

/// A mark on the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// A core started at this point.
    Spawn,
    /// A slower core corrected this point.
    Rectified,
    /// The preview (a one-jump guess of the output).
    Preview,
    /// A finished output.
    Hit,
}

/// What the timeline knows of a run.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    steps: usize,
    /// Per core: `(round, index)` after each round it took part in.
    paths: Vec<Vec<(usize, usize)>>,
    marks: Vec<(Mark, usize, usize, usize)>,
    rounds: usize,
}

/// A colour per core, distinct for up to 16 cores.
pub fn core_colour(core: usize) -> Color32 {
    // Golden-angle hues at fixed saturation and value.
    let hue = (core as f32 * 0.381_966).fract();
    let c = egui::ecolor::Hsva::new(hue, 0.65, 0.95, 1.0);
    Color32::from(c)
}

impl Timeline {
    /// An empty timeline for `cores` cores over `steps` steps.
    pub fn new(steps: usize, cores: usize) -> Self {
        Self {
            steps,
            paths: vec![Vec::new(); cores],
            marks: Vec::new(),
            rounds: 0,
        }
    }

    /// Core `core` is at `index` after `round`.
    pub fn point(&mut self, round: usize, core: usize, index: usize) {
        if let Some(path) = self.paths.get_mut(core) {
            path.push((round, index));
        }
        self.rounds = self.rounds.max(round);
    }

    /// A mark at `(round, index)` for `core`.
    pub fn mark(&mut self, mark: Mark, round: usize, core: usize, index: usize) {
        self.marks.push((mark, round, core, index));
        self.rounds = self.rounds.max(round);
    }

    /// Draws the timeline into the space `ui` offers: rounds across, grid index down.
    pub fn show(&self, ui: &mut egui::Ui) {
        let size = ui.available_size().max(Vec2::new(200.0, 120.0));
        let (response, painter) = ui.allocate_painter(size, Sense::hover());
        let frame = response.rect;
        painter.rect_filled(frame, 4.0, ui.visuals().extreme_bg_color);
        let plot = Rect::from_min_max(
            frame.min + Vec2::new(44.0, 10.0),
            frame.max - Vec2::new(12.0, 24.0),
        );
        let text = ui.visuals().text_color();
        let grid = ui.visuals().widgets.noninteractive.bg_stroke;
        let font = FontId::proportional(11.0);
        let rounds = self.rounds.max(self.steps).max(1);
        let steps = self.steps.max(1);
        let at = |round: usize, index: usize| -> Pos2 {
            pos2(
                plot.left() + plot.width() * round as f32 / rounds as f32,
                plot.top() + plot.height() * index as f32 / steps as f32,
            )
        };
        // Axes: grid index 0 at the top (pure noise), T at the bottom (the output).
        for k in 0..=4 {
            let index = steps * k / 4;
            let y = at(0, index).y;
            painter.line_segment([pos2(plot.left(), y), pos2(plot.right(), y)], grid);
            painter.text(
                pos2(plot.left() - 6.0, y),
                Align2::RIGHT_CENTER,
                index.to_string(),
                font.clone(),
                text,
            );
        }
        for k in 0..=5 {
            let round = rounds * k / 5;
            let x = at(round, 0).x;
            painter.text(
                pos2(x, plot.bottom() + 4.0),
                Align2::CENTER_TOP,
                round.to_string(),
                font.clone(),
                text,
            );
        }
        painter.text(
            pos2(frame.left() + 4.0, plot.bottom() + 4.0),
            Align2::LEFT_TOP,
            "round",
            font.clone(),
            text,
        );
        painter.text(
            pos2(frame.left() + 4.0, plot.top()),
            Align2::LEFT_TOP,
            "i",
            font.clone(),
            text,
        );
        for (core, path) in self.paths.iter().enumerate() {
            let colour = core_colour(core);
            let points: Vec<Pos2> = path.iter().map(|&(r, i)| at(r, i)).collect();
            if points.len() > 1 {
                painter.add(Shape::line(points.clone(), Stroke::new(2.0, colour)));
            }
            if let Some(&last) = points.last() {
                painter.circle_filled(last, 2.5, colour);
            }
        }
        for &(mark, round, core, index) in &self.marks {
            draw_mark(&painter, mark, at(round, index), core_colour(core), text);
        }
        // The legend, right-aligned along the top.
        let mut x = plot.right();
        for (mark, name) in [
            (Mark::Hit, "hit"),
            (Mark::Preview, "preview"),
            (Mark::Rectified, "rectified"),
            (Mark::Spawn, "spawn"),
        ] {
            let label = painter.text(
                pos2(x, plot.top() + 2.0),
                Align2::RIGHT_TOP,
                name,
                font.clone(),
                text,
            );
            draw_mark(
                &painter,
                mark,
                pos2(label.left() - 9.0, label.center().y),
                text,
                text,
            );
            x = label.left() - 24.0;
        }
    }
}

/// Draws one mark centred on `p`.
fn draw_mark(painter: &egui::Painter, mark: Mark, p: Pos2, colour: Color32, text: Color32) {
    match mark {
        Mark::Spawn => {
            painter.circle_stroke(p, 5.0, Stroke::new(1.5, colour));
        }
        Mark::Rectified => {
            let d = 3.5;
            let stroke = Stroke::new(1.5, text);
            painter.line_segment([p + Vec2::new(-d, -d), p + Vec2::new(d, d)], stroke);
            painter.line_segment([p + Vec2::new(-d, d), p + Vec2::new(d, -d)], stroke);
        }
        Mark::Preview => {
            let d = 6.0;
            painter.add(Shape::convex_polygon(
                vec![
                    p + Vec2::new(0.0, -d),
                    p + Vec2::new(d, 0.0),
                    p + Vec2::new(0.0, d),
                    p + Vec2::new(-d, 0.0),
                ],
                Color32::TRANSPARENT,
                Stroke::new(2.0, text),
            ));
        }
        Mark::Hit => {
            painter.circle_filled(p, 6.0, colour);
            painter.circle_stroke(p, 6.0, Stroke::new(1.5, text));
        }
    }
}
