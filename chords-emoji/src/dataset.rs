//! The training pictures: `chords data`'s `images.npy`, `labels.npy` and `catalog.tsv`,
//! checked when read.

use std::path::Path;

use crate::{CODE, CODE_LEN, EmojiError, NUMEL, conditions};

/// Pictures and their conditions.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// `len · 3·32·32` values in [-1, 1].
    pub images: Vec<f32>,
    /// The condition of each picture (see [`crate::condition`]).
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Reads `images.npy` (N, 3, 32, 32) and `labels.npy` (N) as written by `chords data`,
    /// after checking that the folder's `catalog.tsv` is the catalogue built into this crate
    /// (so that the labels mean the conditions the model is asked for).
    pub fn load(dir: &Path) -> Result<Self, EmojiError> {
        let bad = |e: chords::npy::NpyError| EmojiError::Input(e.to_string());
        let path = dir.join("catalog.tsv");
        let catalog = chords::read::read_text(&path, 1 << 20)
            .map_err(|e| EmojiError::Input(format!("{}: {}", path.display(), e.reason)))?;
        if catalog != include_str!("../catalog.tsv") {
            return Err(EmojiError::Input(format!(
                "{}: catalog.tsv differs from the catalogue built into chords-emoji; copy it to \
                 chords-emoji/catalog.tsv and rebuild to train on this data",
                dir.display()
            )));
        }
        let images = chords::npy::read(&dir.join("images.npy")).map_err(bad)?;
        let labels = chords::npy::read(&dir.join("labels.npy")).map_err(bad)?;
        let n = labels.data.len();
        if images.shape != [n, 3, 32, 32] {
            return Err(EmojiError::Input(format!(
                "{}: images have shape {:?}, expected ({n}, 3, 32, 32)",
                dir.display(),
                images.shape
            )));
        }
        let labels: Vec<usize> = labels.data.iter().map(|l| *l as usize).collect();
        if let Some(bad) = labels.iter().find(|l| **l >= conditions()) {
            return Err(EmojiError::Input(format!(
                "{}: label {bad} is not a condition (0..{})",
                dir.display(),
                conditions()
            )));
        }
        Ok(Self {
            images: images.data,
            labels,
        })
    }

    /// Number of pictures.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Every `every`-th picture (e.g. a fixed subset to measure the loss on).
    pub fn every(&self, every: usize) -> Self {
        let mut part = Self::default();
        for i in (0..self.len()).skip(every.max(1) - 1).step_by(every.max(1)) {
            part.images.extend_from_slice(self.picture(i));
            part.labels.push(self.labels[i]);
        }
        part
    }

    /// A code table for `rows` codes (`rows · CODE_LEN` values): each picture's 8×8
    /// thumbnail (the mean of each 4×4 block) in its condition's row, zero where no picture
    /// has that condition (the null condition's row among them). Where several pictures
    /// share a condition, the last one's.
    pub fn thumbnails(&self, rows: usize) -> Vec<f32> {
        let [channels, side, _] = CODE;
        let block = 32 / side;
        let mut codes = vec![0.0; rows * CODE_LEN];
        for (i, &label) in self.labels.iter().enumerate().filter(|(_, l)| **l < rows) {
            let picture = self.picture(i);
            let code = &mut codes[label * CODE_LEN..(label + 1) * CODE_LEN];
            for c in 0..channels {
                for (cell, value) in code[c * side * side..(c + 1) * side * side]
                    .iter_mut()
                    .enumerate()
                {
                    let (y0, x0) = ((cell / side) * block, (cell % side) * block);
                    let sum: f32 = (0..block * block)
                        .map(|k| picture[c * 1024 + (y0 + k / block) * 32 + x0 + k % block])
                        .sum();
                    *value = sum / (block * block) as f32;
                }
            }
        }
        codes
    }

    /// Picture `i`'s values.
    pub(crate) fn picture(&self, i: usize) -> &[f32] {
        &self.images[i * NUMEL..(i + 1) * NUMEL]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_are_block_means_in_their_conditions_rows() {
        // Picture value = row index · 32 + column, in every channel (channel adds 1000·c).
        let picture: Vec<f32> = (0..NUMEL)
            .map(|j| (j / 1024 * 1000 + j % 1024) as f32)
            .collect();
        let data = Dataset {
            images: picture.clone(),
            labels: vec![2],
        };
        let codes = data.thumbnails(4);
        assert_eq!(codes.len(), 4 * CODE_LEN);
        assert!(codes[..2 * CODE_LEN].iter().all(|v| *v == 0.0));
        assert!(codes[3 * CODE_LEN..].iter().all(|v| *v == 0.0));
        let code = &codes[2 * CODE_LEN..3 * CODE_LEN];
        // Cell (y, x) of channel c: mean of rows 4y..4y+4, columns 4x..4x+4 = (4y+1.5)·32 + 4x+1.5.
        for (c, y, x) in [(0, 0, 0), (1, 3, 5), (2, 7, 7)] {
            let expected =
                1000.0 * c as f32 + (4 * y) as f32 * 32.0 + 1.5 * 32.0 + (4 * x) as f32 + 1.5;
            assert_eq!(code[c * 64 + y * 8 + x], expected, "{c} {y} {x}");
        }
    }

    #[test]
    fn every_takes_each_nth_picture() {
        let data = Dataset {
            images: (0..5 * NUMEL).map(|j| (j / NUMEL) as f32).collect(),
            labels: vec![10, 11, 12, 13, 14],
        };
        let part = data.every(2);
        assert_eq!(part.labels, [11, 13]);
        assert_eq!(part.picture(1)[0], 3.0);
    }
}
