//! PNG line charts with no plotting dependency (training loss, benchmark plots), drawn on
//! a small RGB canvas with Bresenham lines and a built-in 5×7 bitmap
//! font with descenders (printable ASCII; anything else is drawn as `?`), then encoded
//! with `png`.

use anyhow::{Context, Result};

/// An RGB colour.
type Rgb = [u8; 3];

const WIDTH: usize = 960;
const HEIGHT: usize = 600;
/// The plot area: left, right, top and bottom edges in pixels.
const LEFT: i64 = 120;
const RIGHT: i64 = 930;
const TOP: i64 = 72;
const BOTTOM: i64 = 530;
/// Gap between the axes and the extreme data points, in pixels.
const PAD: f64 = 10.0;
/// Scale of the 5×7 font for labels (the title uses 3 where it fits).
const TEXT: i64 = 2;

const BLACK: Rgb = [0, 0, 0];
const WHITE: Rgb = [255, 255, 255];
const GRID: Rgb = [228, 228, 228];
const PALETTE: [Rgb; 8] = [
    [0x1f, 0x77, 0xb4],
    [0xd6, 0x27, 0x28],
    [0x2c, 0xa0, 0x2c],
    [0xff, 0x7f, 0x0e],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x17, 0xbe, 0xcf],
];

/// 5×7 glyphs for ASCII 32..=126: five columns, bit 0 of each byte is the top row, bit 6
/// the baseline and bit 7 a descender row (`g j p q y _`).
#[rustfmt::skip]
const FONT: [[u8; 5]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00], [0x00, 0x00, 0x5F, 0x00, 0x00], // space !
    [0x00, 0x07, 0x00, 0x07, 0x00], [0x14, 0x7F, 0x14, 0x7F, 0x14], // " #
    [0x24, 0x2A, 0x7F, 0x2A, 0x12], [0x23, 0x13, 0x08, 0x64, 0x62], // $ %
    [0x36, 0x49, 0x55, 0x22, 0x50], [0x00, 0x05, 0x03, 0x00, 0x00], // & '
    [0x00, 0x1C, 0x22, 0x41, 0x00], [0x00, 0x41, 0x22, 0x1C, 0x00], // ( )
    [0x14, 0x08, 0x3E, 0x08, 0x14], [0x08, 0x08, 0x3E, 0x08, 0x08], // * +
    [0x00, 0x50, 0x30, 0x00, 0x00], [0x08, 0x08, 0x08, 0x08, 0x08], // , -
    [0x00, 0x60, 0x60, 0x00, 0x00], [0x20, 0x10, 0x08, 0x04, 0x02], // . /
    [0x3E, 0x51, 0x49, 0x45, 0x3E], [0x00, 0x42, 0x7F, 0x40, 0x00], // 0 1
    [0x42, 0x61, 0x51, 0x49, 0x46], [0x21, 0x41, 0x45, 0x4B, 0x31], // 2 3
    [0x18, 0x14, 0x12, 0x7F, 0x10], [0x27, 0x45, 0x45, 0x45, 0x39], // 4 5
    [0x3C, 0x4A, 0x49, 0x49, 0x30], [0x01, 0x71, 0x09, 0x05, 0x03], // 6 7
    [0x36, 0x49, 0x49, 0x49, 0x36], [0x06, 0x49, 0x49, 0x29, 0x1E], // 8 9
    [0x00, 0x36, 0x36, 0x00, 0x00], [0x00, 0x56, 0x36, 0x00, 0x00], // : ;
    [0x08, 0x14, 0x22, 0x41, 0x00], [0x14, 0x14, 0x14, 0x14, 0x14], // < =
    [0x00, 0x41, 0x22, 0x14, 0x08], [0x02, 0x01, 0x51, 0x09, 0x06], // > ?
    [0x32, 0x49, 0x79, 0x41, 0x3E], [0x7E, 0x11, 0x11, 0x11, 0x7E], // @ A
    [0x7F, 0x49, 0x49, 0x49, 0x36], [0x3E, 0x41, 0x41, 0x41, 0x22], // B C
    [0x7F, 0x41, 0x41, 0x22, 0x1C], [0x7F, 0x49, 0x49, 0x49, 0x41], // D E
    [0x7F, 0x09, 0x09, 0x09, 0x01], [0x3E, 0x41, 0x49, 0x49, 0x7A], // F G
    [0x7F, 0x08, 0x08, 0x08, 0x7F], [0x00, 0x41, 0x7F, 0x41, 0x00], // H I
    [0x20, 0x40, 0x41, 0x3F, 0x01], [0x7F, 0x08, 0x14, 0x22, 0x41], // J K
    [0x7F, 0x40, 0x40, 0x40, 0x40], [0x7F, 0x02, 0x0C, 0x02, 0x7F], // L M
    [0x7F, 0x04, 0x08, 0x10, 0x7F], [0x3E, 0x41, 0x41, 0x41, 0x3E], // N O
    [0x7F, 0x09, 0x09, 0x09, 0x06], [0x3E, 0x41, 0x51, 0x21, 0x5E], // P Q
    [0x7F, 0x09, 0x19, 0x29, 0x46], [0x46, 0x49, 0x49, 0x49, 0x31], // R S
    [0x01, 0x01, 0x7F, 0x01, 0x01], [0x3F, 0x40, 0x40, 0x40, 0x3F], // T U
    [0x1F, 0x20, 0x40, 0x20, 0x1F], [0x3F, 0x40, 0x38, 0x40, 0x3F], // V W
    [0x63, 0x14, 0x08, 0x14, 0x63], [0x07, 0x08, 0x70, 0x08, 0x07], // X Y
    [0x61, 0x51, 0x49, 0x45, 0x43], [0x00, 0x7F, 0x41, 0x41, 0x00], // Z [
    [0x02, 0x04, 0x08, 0x10, 0x20], [0x00, 0x41, 0x41, 0x7F, 0x00], // \ ]
    [0x04, 0x02, 0x01, 0x02, 0x04], [0x80, 0x80, 0x80, 0x80, 0x80], // ^ _
    [0x00, 0x01, 0x02, 0x04, 0x00], [0x20, 0x54, 0x54, 0x54, 0x78], // ` a
    [0x7F, 0x48, 0x44, 0x44, 0x38], [0x38, 0x44, 0x44, 0x44, 0x20], // b c
    [0x38, 0x44, 0x44, 0x48, 0x7F], [0x38, 0x54, 0x54, 0x54, 0x18], // d e
    [0x08, 0x7E, 0x09, 0x01, 0x02], [0x98, 0xA4, 0xA4, 0xA4, 0x7C], // f g
    [0x7F, 0x08, 0x04, 0x04, 0x78], [0x00, 0x44, 0x7D, 0x40, 0x00], // h i
    [0x00, 0x80, 0x84, 0x7D, 0x00], [0x7F, 0x10, 0x28, 0x44, 0x00], // j k
    [0x00, 0x41, 0x7F, 0x40, 0x00], [0x7C, 0x04, 0x18, 0x04, 0x78], // l m
    [0x7C, 0x08, 0x04, 0x04, 0x78], [0x38, 0x44, 0x44, 0x44, 0x38], // n o
    [0xFC, 0x24, 0x24, 0x24, 0x18], [0x18, 0x24, 0x24, 0x24, 0xFC], // p q
    [0x7C, 0x08, 0x04, 0x04, 0x08], [0x48, 0x54, 0x54, 0x54, 0x20], // r s
    [0x04, 0x3F, 0x44, 0x40, 0x20], [0x3C, 0x40, 0x40, 0x20, 0x7C], // t u
    [0x1C, 0x20, 0x40, 0x20, 0x1C], [0x3C, 0x40, 0x30, 0x40, 0x3C], // v w
    [0x44, 0x28, 0x10, 0x28, 0x44], [0x1C, 0xA0, 0xA0, 0xA0, 0x7C], // x y
    [0x44, 0x64, 0x54, 0x4C, 0x44], [0x00, 0x08, 0x36, 0x41, 0x00], // z {
    [0x00, 0x00, 0x7F, 0x00, 0x00], [0x00, 0x41, 0x36, 0x08, 0x00], // | }
    [0x08, 0x04, 0x08, 0x10, 0x08],                                 // ~
];

/// The glyph for `ch`: a few common non-ASCII signs become their ASCII look-alikes,
/// anything else outside printable ASCII becomes `?`.
fn glyph(ch: char) -> &'static [u8; 5] {
    let ch = match ch {
        '–' | '—' | '−' => '-',
        '×' => 'x',
        '‘' | '’' => '\'',
        '“' | '”' => '"',
        '·' => '.',
        c => c,
    };
    let i = u32::from(ch).wrapping_sub(32);
    FONT.get(i as usize)
        .unwrap_or(&FONT[usize::from(b'?' - 32)])
}

/// Width in pixels of `s` drawn at `scale` (6 columns a character, less the last gap).
fn text_width(s: &str, scale: i64) -> i64 {
    (s.chars().count() as i64 * 6 - 1).max(0) * scale
}

/// An RGB8 picture, white to begin with; drawing outside it is silently clipped.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if let (Ok(x), Ok(y)) = (usize::try_from(x), usize::try_from(y))
            && x < self.width
            && y < self.height
        {
            let i = (y * self.width + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills the `w`×`h` rectangle with top-left corner `(x, y)`.
    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        let (x1, y1) = (
            x.saturating_add(w).min(self.width as i64),
            y.saturating_add(h),
        );
        for yy in y.max(0)..y1.min(self.height as i64) {
            for xx in x.max(0)..x1 {
                self.set(xx, yy, c);
            }
        }
    }

    /// A 2-pixel-wide line between two points (pixel coordinates, any values).
    fn line(&mut self, a: (f64, f64), b: (f64, f64), c: Rgb) {
        let Some((a, b)) = clip(a, b, self.width as f64, self.height as f64) else {
            return;
        };
        let (mut x, mut y) = (a.0.round() as i64, a.1.round() as i64);
        let (x1, y1) = (b.0.round() as i64, b.1.round() as i64);
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            self.rect(x, y, 2, 2, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `s` with its top-left corner at `(x, y)`, each font pixel `scale` pixels wide.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb) {
        for (i, ch) in s.chars().enumerate() {
            let gx = x + i as i64 * 6 * scale;
            if gx >= self.width as i64 {
                break;
            }
            for (col, bits) in (0..).zip(glyph(ch)) {
                for row in (0..8).filter(|r| bits >> r & 1 == 1) {
                    self.rect(gx + col * scale, y + row * scale, scale, scale, c);
                }
            }
        }
    }

    /// Black label text at scale 2, `x` being its left end, centre or right end for
    /// `align` 0, 1 or 2.
    fn label(&mut self, x: i64, y: i64, s: &str, align: i64) {
        self.text(x - text_width(s, TEXT) * align / 2, y, s, TEXT, BLACK);
    }
}

/// Clips the segment `a`–`b` to the canvas (with a small margin) by Liang–Barsky; `None`
/// when nothing of it is left or it has non-finite coordinates.
fn clip(a: (f64, f64), b: (f64, f64), w: f64, h: f64) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    if ![a.0, a.1, dx, dy].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 + 2.0),
        (dx, w + 1.0 - a.0),
        (-dy, a.1 + 2.0),
        (dy, h + 1.0 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else if p < 0.0 {
            t0 = t0.max(q / p);
        } else {
            t1 = t1.min(q / p);
        }
    }
    (t0 <= t1).then_some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}

/// A data range `lo..=hi` mapped onto `0..=1`.
struct Range {
    lo: f64,
    hi: f64,
}

impl Range {
    /// The range of `values` (finite), widened when empty or a single value.
    fn fit(values: impl Iterator<Item = f64>) -> Self {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if lo > hi {
            return Self { lo: 0.0, hi: 1.0 };
        }
        let d = if lo == hi { lo.abs().max(10.0) } else { 0.0 } * 0.1;
        let (lo, hi) = (lo - d, hi + d);
        Self { lo, hi }
    }

    /// Where `v` lies in the range, 0 at `lo` and 1 at `hi` (halved to avoid overflow).
    fn frac(&self, v: f64) -> f64 {
        let span = self.hi * 0.5 - self.lo * 0.5;
        if span > 0.0 && span.is_finite() {
            (v * 0.5 - self.lo * 0.5) / span
        } else {
            0.5
        }
    }

    /// The value at fraction `f` of the range.
    fn at(&self, f: f64) -> f64 {
        self.lo * (1.0 - f) + self.hi * f
    }

    /// Five evenly spaced ticks with their labels.
    fn linear_ticks(&self) -> Vec<(f64, String)> {
        let tiny = (self.hi - self.lo).abs() * 1e-9;
        (0..5)
            .map(|i| self.at(f64::from(i) / 4.0))
            .map(|v| (v, number(if v.abs() < tiny { 0.0 } else { v })))
            .collect()
    }

    /// Widens a range of log10 values to whole decades and returns its decade ticks
    /// (at most five, every `k`-th decade).
    fn decade_ticks(&mut self) -> Vec<(f64, String)> {
        let lo = self.lo.floor().clamp(-400.0, 400.0);
        let hi = self.hi.ceil().clamp(-400.0, 400.0).max(lo + 1.0);
        let k = ((hi - lo) / 4.0).ceil().max(1.0);
        let n = ((hi - lo) / k).ceil();
        (self.lo, self.hi) = (lo, lo + n * k);
        (0..=n as i64)
            .map(|j| lo + j as f64 * k)
            .map(|d| (d, format!("1e{d}")))
            .collect()
    }
}

/// A short tick label: up to two decimals (trailing zeros dropped), or `1.5e-3` style
/// for very small or large magnitudes.
fn number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e6).contains(&a) {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Draws a line chart of named `(x, y)` series as PNG bytes (RGB or RGBA, 8-bit).
/// `log_y` draws y on a log10 scale (points with y <= 0 are left out there);
/// non-finite points are always left out.
pub fn line_chart_png(
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<Vec<u8>> {
    let keep = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_y || p.1 > 0.0);
    let fy = |y: f64| if log_y { y.log10() } else { y };
    let kept: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| {
            (
                name.as_str(),
                pts.iter().filter(keep).map(|p| (p.0, fy(p.1))).collect(),
            )
        })
        .collect();
    let all = || kept.iter().flat_map(|s| s.1.iter());
    let xs = Range::fit(all().map(|p| p.0));
    let mut ys = Range::fit(all().map(|p| p.1));
    let x_ticks = xs.linear_ticks();
    let y_ticks = if log_y {
        ys.decade_ticks()
    } else {
        ys.linear_ticks()
    };
    let px = |x: f64| LEFT as f64 + PAD + xs.frac(x) * ((RIGHT - LEFT) as f64 - 2.0 * PAD);
    let py = |y: f64| BOTTOM as f64 - PAD - ys.frac(y) * ((BOTTOM - TOP) as f64 - 2.0 * PAD);
    let pixel = |v: f64| v.round() as i64;

    let mut c = Canvas::new(WIDTH, HEIGHT);
    for (v, label) in &x_ticks {
        let x = pixel(px(*v));
        c.rect(x, TOP, 1, BOTTOM - TOP, GRID);
        c.rect(x, BOTTOM, 1, 6, BLACK);
        c.label(x, BOTTOM + 10, label, 1);
    }
    for (v, label) in &y_ticks {
        let y = pixel(py(*v));
        c.rect(LEFT + 1, y, RIGHT - LEFT, 1, GRID);
        c.rect(LEFT - 6, y, 6, 1, BLACK);
        c.label(LEFT - 10, y - 7, label, 2);
    }
    c.rect(LEFT, TOP, 1, BOTTOM - TOP + 1, BLACK);
    c.rect(LEFT, BOTTOM, RIGHT - LEFT + 1, 1, BLACK);

    for (i, (_, pts)) in kept.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let at: Vec<(f64, f64)> = pts.iter().map(|p| (px(p.0), py(p.1))).collect();
        for w in at.windows(2) {
            c.line(w[0], w[1], colour);
        }
        for p in &at {
            c.rect(pixel(p.0) - 2, pixel(p.1) - 2, 5, 5, colour);
        }
    }

    // Legend, top right inside the plot area.
    if !kept.is_empty() {
        let longest = kept.iter().fold(0, |m, s| m.max(text_width(s.0, TEXT)));
        let (w, h) = (longest + 56, kept.len() as i64 * 22 + 12);
        let (x, y) = (RIGHT - 12 - w, TOP + 12);
        c.rect(x, y, w, h, BLACK);
        c.rect(x + 1, y + 1, w - 2, h - 2, WHITE);
        for (i, (name, _)) in (0..).zip(&kept) {
            let colour = PALETTE[i as usize % PALETTE.len()];
            let row = y + 8 + i * 22;
            c.rect(x + 10, row + 5, 28, 4, colour);
            c.text(x + 46, row, name, TEXT, colour);
        }
    }

    let fits = text_width(title, 3) <= WIDTH as i64 - 20;
    let scale = if fits { 3 } else { TEXT };
    let title_x = ((WIDTH as i64 - text_width(title, scale)) / 2).max(10);
    c.text(title_x, 14, title, scale, BLACK);
    c.label((LEFT + RIGHT) / 2, BOTTOM + 40, x_label, 1);
    c.label(12, TOP - 26, y_label, 0);
    encode(&c)
}

/// One labelled tile of [`picture_grid_png`]: 3×32×32 pictures (values in [-1, 1]) side by
/// side, its label under them.
pub struct Tile<'a> {
    /// Drawn under the pictures (cut to the tile's width).
    pub label: String,
    /// The pictures, left to right.
    pub pictures: Vec<&'a [f32]>,
}

/// A grid of `columns` tiles a row, each picture drawn at twice its size, as PNG bytes.
pub fn picture_grid_png(columns: usize, tiles: &[Tile]) -> Result<Vec<u8>> {
    const SIDE: i64 = 64;
    const GAP: i64 = 12;
    let per_tile = tiles
        .iter()
        .map(|t| t.pictures.len())
        .max()
        .unwrap_or(1)
        .max(1) as i64;
    let columns = columns.max(1);
    let rows = tiles.len().div_ceil(columns).max(1) as i64;
    let (tile_w, tile_h) = (per_tile * SIDE + (per_tile - 1) * 2, SIDE + 14);
    let width = columns as i64 * (tile_w + GAP) + GAP;
    let height = rows * (tile_h + GAP) + GAP;
    let mut canvas = Canvas::new(width as usize, height as usize);
    for (i, tile) in tiles.iter().enumerate() {
        let x0 = GAP + (i % columns) as i64 * (tile_w + GAP);
        let y0 = GAP + (i / columns) as i64 * (tile_h + GAP);
        for (k, picture) in tile.pictures.iter().enumerate() {
            let px = x0 + k as i64 * (SIDE + 2);
            for p in 0..(32 * 32).min(picture.len() / 3) {
                let rgb = [0, 1, 2].map(|c| chords::preview::to_byte(picture[c * 1024 + p]));
                canvas.rect(
                    px + (p % 32) as i64 * 2,
                    y0 + (p / 32) as i64 * 2,
                    2,
                    2,
                    rgb,
                );
            }
        }
        let fits = (tile_w / 6).max(1) as usize;
        let label: String = tile.label.chars().take(fits).collect();
        canvas.text(x0, y0 + SIDE + 4, &label, 1, BLACK);
    }
    encode(&canvas)
}

/// Encodes the canvas as an 8-bit RGB PNG.
fn encode(c: &Canvas) -> Result<Vec<u8>> {
    const ERR: &str = "cannot encode a chart as PNG";
    let mut out = Vec::new();
    let (w, h) = (u32::try_from(c.width)?, u32::try_from(c.height)?);
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context(ERR)?;
    writer.write_image_data(&c.pixels).context(ERR)?;
    writer.finish().context(ERR)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes PNG bytes to (width, height, RGB pixels).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn curve(n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| (17.0 + i as f64, 0.1 * 0.6f64.powi(i as i32)))
            .collect()
    }

    #[test]
    fn decodes_to_the_stated_size() {
        let png = line_chart_png("t", "x", "y", true, &[("a".into(), curve(34))]).unwrap();
        let (w, h, pixels) = decode(&png);
        assert_eq!((w, h), (WIDTH as u32, HEIGHT as u32));
        assert_eq!(pixels.len(), WIDTH * HEIGHT * 3);
    }

    #[test]
    fn a_series_is_drawn_in_its_colour() {
        for log_y in [false, true] {
            let png = line_chart_png("t", "x", "y", log_y, &[("a".into(), curve(34))]).unwrap();
            let (_, _, pixels) = decode(&png);
            let lit = pixels.chunks(3).filter(|p| *p == PALETTE[0]).count();
            assert!(lit > 300, "only {lit} pixels of the series colour");
        }
    }

    #[test]
    fn degenerate_input_gives_a_valid_png() {
        let (nan, max) = (f64::NAN, f64::MAX);
        let cases: [&[(f64, f64)]; 7] = [
            &[(nan, 1.0), (1.0, nan), (f64::INFINITY, 2.0)],
            &[],
            &[(3.0, 3.0)],
            &[(1.0, 0.0), (2.0, 0.0), (3.0, 0.0)],
            &[(-max, -max), (max, max), (0.0, 1e-300)],
            &[(0.0, f64::MIN_POSITIVE), (1e-320, 5e-324)],
            &[(0.0, -1.0), (1.0, 0.0), (2.0, 5.0)],
        ];
        for log_y in [false, true] {
            let png = line_chart_png("σ–τ × chart", "x", "y", log_y, &[]).unwrap();
            assert_eq!(decode(&png).0, WIDTH as u32);
            for case in cases {
                let series = [("σ × τ – ü".to_string(), case.to_vec())];
                let png = line_chart_png("σ–τ × chart", "x ×", "τ", log_y, &series).unwrap();
                assert_eq!(decode(&png).0, WIDTH as u32);
            }
        }
    }

    #[test]
    fn every_digit_has_lit_pixels() {
        let mut c = Canvas::new(200, 20);
        c.text(0, 0, "0123456789", 2, BLACK);
        for digit in 0..10 {
            let lit = (0..14)
                .flat_map(|y| (0..10).map(move |x| (digit * 12 + x, y)))
                .filter(|&(x, y)| c.pixels[(y * c.width + x) * 3] == 0)
                .count();
            assert!(lit > 8, "digit {digit} has {lit} lit pixels");
        }
    }

    #[test]
    fn lines_are_clipped_and_never_panic() {
        let mut c = Canvas::new(10, 10);
        c.line((-1e300, -1e300), (1e300, 1e300), BLACK);
        c.line((f64::NAN, 0.0), (3.0, 3.0), BLACK);
        c.line((5.0, 5.0), (5.0, 5.0), BLACK);
        assert_eq!(c.pixels[(5 * 10 + 5) * 3], 0);
    }
}
