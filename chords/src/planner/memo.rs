//! A model wrapper that remembers its outputs, so that a planner's many runs from the same
//! starting point evaluate each distinct point once.
//!
//! Core `c` of a CHORDS run depends only on the sequence's first `c + 1` entries, so two
//! candidate sequences that share a prefix repeat those cores' calls exactly (core 0's are
//! always the sequential solve's). The table is bounded: once it holds [`MEMO_BYTES`], new
//! outputs are computed but no longer stored.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use crate::backend::{CpuBackend, CpuLatent};
use crate::model::{Model, ModelError};
use crate::sampler::Request;
use crate::schedule::Timestep;

/// Most bytes of inputs and outputs a [`Memo`] keeps.
pub const MEMO_BYTES: usize = 512 << 20;

/// One remembered call.
struct Call {
    index: usize,
    t: u64,
    input: CpuLatent,
    output: CpuLatent,
}

/// `model` with a bounded table of the calls it has answered.
pub(crate) struct Memo<'a, M: ?Sized> {
    model: &'a M,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    calls: HashMap<u64, Vec<Call>>,
    bytes: usize,
}

fn key(x: &CpuLatent, t: &Timestep) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.index.hash(&mut h);
    t.t.to_bits().hash(&mut h);
    for v in x.as_slice() {
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

impl<'a, M: Model<CpuBackend> + ?Sized> Memo<'a, M> {
    pub(crate) fn new(model: &'a M) -> Self {
        Self {
            model,
            table: Mutex::new(Table::default()),
        }
    }

    fn lookup(&self, key: u64, x: &CpuLatent, t: &Timestep) -> Option<CpuLatent> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.calls.get(&key)?.iter().find_map(|c| {
            (c.index == t.index && c.t == t.t.to_bits() && c.input.as_slice() == x.as_slice())
                .then(|| c.output.clone())
        })
    }

    fn store(&self, key: u64, x: &CpuLatent, t: &Timestep, output: &CpuLatent) {
        let bytes = 4 * (x.as_slice().len() + output.as_slice().len());
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.bytes + bytes > MEMO_BYTES {
            return;
        }
        table.bytes += bytes;
        table.calls.entry(key).or_default().push(Call {
            index: t.index,
            t: t.t.to_bits(),
            input: x.clone(),
            output: output.clone(),
        });
    }

    /// How many calls are stored (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.calls.values().map(Vec::len).sum()
    }
}

impl<M: Model<CpuBackend> + ?Sized> Model<CpuBackend> for Memo<'_, M> {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        let key = key(x, t);
        if let Some(out) = self.lookup(key, x, t) {
            return Ok(out);
        }
        let out = self.model.evaluate(core, x, t)?;
        self.store(key, x, t, &out);
        Ok(out)
    }

    fn evaluate_batch(
        &self,
        requests: &[Request<CpuLatent>],
    ) -> Vec<Result<CpuLatent, ModelError>> {
        let keys: Vec<u64> = requests
            .iter()
            .map(|r| key(&r.latent, &r.timestep))
            .collect();
        let mut answers: Vec<Option<Result<CpuLatent, ModelError>>> = requests
            .iter()
            .zip(&keys)
            .map(|(r, &k)| self.lookup(k, &r.latent, &r.timestep).map(Ok))
            .collect();
        let missing: Vec<usize> = (0..requests.len())
            .filter(|&i| answers[i].is_none())
            .collect();
        let asked: Vec<Request<CpuLatent>> = missing.iter().map(|&i| requests[i].clone()).collect();
        let outputs = if asked.is_empty() {
            Vec::new()
        } else {
            self.model.evaluate_batch(&asked)
        };
        for (&i, out) in missing.iter().zip(outputs) {
            if let Ok(o) = &out {
                self.store(keys[i], &requests[i].latent, &requests[i].timestep, o);
            }
            answers[i] = Some(out);
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(ModelError::new("the model gave too few outputs"))))
            .collect()
    }

    fn batches(&self) -> bool {
        self.model.batches()
    }
}
