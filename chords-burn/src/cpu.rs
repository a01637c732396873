//! [`BurnModel`] on the CPU backend: host latents stacked into one tensor on the network's
//! device, outputs read back.

use burn::tensor::{Tensor, TensorData};
use chords::{CpuBackend, CpuLatent, Model, ModelError, Request, Timestep};

use crate::{BurnError, BurnModel, Network};

impl<N: Network<D>, const D: usize> BurnModel<N, D> {
    /// The model outputs for host latents at `times`, in one forward pass.
    pub fn outputs(
        &self,
        latents: &[&[f32]],
        times: &[Timestep],
    ) -> Result<Vec<Vec<f32>>, BurnError> {
        let (b, numel) = (latents.len(), self.numel());
        if b == 0 {
            return Ok(Vec::new());
        }
        if times.len() != b {
            return Err(BurnError::Input(format!(
                "{b} latents but {} time inputs",
                times.len()
            )));
        }
        if let Some(bad) = latents.iter().find(|l| l.len() != numel) {
            return Err(BurnError::Input(format!(
                "the network takes latents of {numel} elements {:?}, got {}",
                self.shape,
                bad.len()
            )));
        }
        let copies = self.copies();
        let mut x = Vec::with_capacity(copies * b * numel);
        for _ in 0..copies {
            for l in latents {
                x.extend_from_slice(l);
            }
        }
        let x = Tensor::<D>::from_data(TensorData::new(x, self.dims(copies * b)), &self.device);
        let v = self.guided(x, times);
        let data: Vec<f32> = v
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| BurnError::Input(format!("the network's output: {e:?}")))?;
        if data.len() != b * numel {
            return Err(BurnError::Input(format!(
                "the network returned {} elements for {b} latents of {numel}",
                data.len()
            )));
        }
        Ok(data.chunks_exact(numel).map(<[f32]>::to_vec).collect())
    }
}

impl<N: Network<D>, const D: usize> Model<CpuBackend> for BurnModel<N, D> {
    fn evaluate(&self, _core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        self.outputs(&[x.as_slice()], std::slice::from_ref(t))?
            .pop()
            .map(CpuLatent::from)
            .ok_or_else(|| ModelError::new("the network returned nothing"))
    }

    fn evaluate_batch(
        &self,
        requests: &[Request<CpuLatent>],
    ) -> Vec<Result<CpuLatent, ModelError>> {
        let latents: Vec<&[f32]> = requests.iter().map(|r| r.latent.as_slice()).collect();
        let times: Vec<Timestep> = requests.iter().map(|r| r.timestep).collect();
        match self.outputs(&latents, &times) {
            Ok(v) => v.into_iter().map(|v| Ok(CpuLatent::from(v))).collect(),
            Err(e) => requests
                .iter()
                .map(|_| Err(ModelError::new(e.to_string())))
                .collect(),
        }
    }

    fn batches(&self) -> bool {
        self.batched
    }
}
