//! The plain sequential solve: T rounds of one model call. The reference for everything.

use std::sync::Arc;

use super::{Event, Output, Request, Sampler, jump};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::solver::Solver;

/// The sequential sampler: `x_{i+1} = jump(x_i, model(x_i), i → i+1)` for i = 0..T.
#[derive(Debug)]
pub struct Sequential<B: Backend> {
    solver: Arc<dyn Solver>,
    index: usize,
    x: B::Latent,
    round: usize,
    estimates: bool,
}

impl<B: Backend> Sequential<B> {
    /// Starts at `x0` (on core 0) at grid index 0.
    pub fn new(solver: Arc<dyn Solver>, x0: B::Latent) -> Self {
        Self {
            solver,
            index: 0,
            x: x0,
            round: 0,
            estimates: false,
        }
    }

    /// [`Sampler::max_live_latents`] of a sequential run, whatever the steps and cores: 3
    /// (the point, its model output and the next point; the run's request still holds the
    /// point when the next one is made).
    pub fn latent_bound(steps: usize, cores: usize) -> usize {
        let _ = (steps, cores);
        3
    }
}

impl<B: Backend> Sampler<B> for Sequential<B> {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn steps(&self) -> usize {
        self.solver.steps()
    }

    fn max_hits(&self) -> usize {
        1
    }

    fn rounds(&self) -> usize {
        self.round
    }

    /// 3: `x_i`, `model(x_i)` and `x_{i+1}` ([`Sequential::latent_bound`]).
    fn max_live_latents(&self) -> usize {
        Self::latent_bound(self.solver.steps(), 1)
    }

    fn requests(&self) -> Vec<Request<B::Latent>> {
        if self.index >= self.solver.steps() {
            return Vec::new();
        }
        vec![Request {
            core: 0,
            index: self.index,
            timestep: self.solver.timestep(self.index),
            latent: self.x.clone(),
        }]
    }

    fn stream_estimates(&mut self, on: bool) -> bool {
        self.estimates = on;
        true
    }

    fn restore(&mut self, _core: usize, latent: B::Latent) -> bool {
        self.x = latent;
        true
    }

    fn rehome(&mut self, backend: &B, core: usize) -> Result<bool> {
        self.x = backend
            .transfer(&self.x, core)
            .map_err(|source| crate::Error::Backend { core, source })?;
        Ok(true)
    }

    fn advance(
        &mut self,
        backend: &B,
        outputs: Vec<B::Latent>,
        events: &mut dyn FnMut(Event<B::Latent>),
    ) -> Result<()> {
        let steps = self.solver.steps();
        let [out] = <[B::Latent; 1]>::try_from(outputs).map_err(|o| {
            Error::Internal(format!(
                "sequential round got {} outputs, expected 1",
                o.len()
            ))
        })?;
        if self.index >= steps {
            return Err(Error::Internal(
                "sequential sampler advanced after finishing".into(),
            ));
        }
        self.round += 1;
        if self.estimates {
            // Made and delivered before the next point, so at most 3 latents are alive.
            let latent = jump(
                backend,
                self.solver.as_ref(),
                0,
                &self.x,
                &out,
                self.index,
                steps,
            )?;
            events(Event::Estimate {
                round: self.round,
                core: 0,
                index: self.index,
                latent,
            });
        }
        self.x = jump(
            backend,
            self.solver.as_ref(),
            0,
            &self.x,
            &out,
            self.index,
            self.index + 1,
        )?;
        self.index += 1;
        events(Event::CoreUpdated {
            round: self.round,
            core: 0,
            index: self.index,
            latent: self.x.clone(),
        });
        if self.index == steps {
            events(Event::Hit(Output {
                position: 1,
                core: 0,
                round: self.round,
                speedup: steps as f64 / self.round as f64,
                latent: self.x.clone(),
            }));
        }
        Ok(())
    }
}
