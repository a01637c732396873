//! The training pictures: `chords data`'s `images.npy` and `labels.npy`, checked when read.

use std::path::Path;

use crate::{CLASSES, EmojiError, NUMEL};

/// Pictures and their class indices.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// `len · 3·32·32` values in [-1, 1].
    pub images: Vec<f32>,
    /// Class index of each picture.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Reads `images.npy` (N, 3, 32, 32) and `labels.npy` (N) as written by `chords data`.
    pub fn load(dir: &Path) -> Result<Self, EmojiError> {
        let bad = |e: chords::npy::NpyError| EmojiError::Input(e.to_string());
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
        if let Some(bad) = labels.iter().find(|l| **l >= CLASSES.len()) {
            return Err(EmojiError::Input(format!(
                "{}: label {bad} is not a class",
                dir.display()
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

    /// Splits off every `every`-th picture as a held-out set: `(train, held_out)`.
    pub fn split(&self, every: usize) -> (Self, Self) {
        let (mut train, mut held) = (Self::default(), Self::default());
        for i in 0..self.len() {
            let part = if i % every == every - 1 {
                &mut held
            } else {
                &mut train
            };
            part.images
                .extend_from_slice(&self.images[i * NUMEL..(i + 1) * NUMEL]);
            part.labels.push(self.labels[i]);
        }
        (train, held)
    }

    /// Picture `i`'s values.
    pub(crate) fn picture(&self, i: usize) -> &[f32] {
        &self.images[i * NUMEL..(i + 1) * NUMEL]
    }
}
