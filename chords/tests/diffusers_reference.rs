//! Grids and time inputs of diffusers scheduler configs against diffusers itself.
//!
//! Every figure compared here comes from `tests/data/diffusers/reference.json`, written by
//! `tests/data/diffusers/reference.py` running diffusers 0.42.1 on torch 2.15: for each
//! case, `set_timesteps(steps[, mu])` of the config's scheduler class (`from_config` for
//! the class named in `solver`) and what it holds afterwards (`timesteps`, `sigmas`,
//! `alphas_cumprod[t]`, the `prev_timestep` ᾱ of each DDIM step, `init_noise_sigma`).
//! chords rebuilds diffusers' float32 tables (betas, ᾱ, σ) operation for operation, so the
//! figures agree to float32 precision.

use std::path::PathBuf;

use chords::diffusers::{DiffusersOptions, SchedulerConfig, SchedulerKind, solver_from_config};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference() -> Value {
    let path = repo().join("tests/data/diffusers/reference.json");
    let text = std::fs::read_to_string(&path).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

/// The config of a case: a shipped file's name or an inline object.
fn config(case: &Value) -> SchedulerConfig {
    let text = match &case["config"] {
        Value::String(name) => {
            std::fs::read_to_string(repo().join(format!("assets/schedulers/{name}.json")))
                .expect("shipped config")
        }
        inline => inline.to_string(),
    };
    SchedulerConfig::parse(&text).expect("config parses")
}

fn kind(name: &str) -> SchedulerKind {
    match name {
        "ddim" => SchedulerKind::Ddim,
        "euler-discrete" => SchedulerKind::EulerDiscrete,
        "euler" => SchedulerKind::FlowMatchEuler,
        other => panic!("unknown solver {other}"),
    }
}

/// The sigmas a case's pipeline passes to `set_timesteps` (FluxPipeline's), if any.
fn pipeline_sigmas(case: &Value, steps: usize) -> Option<Vec<f64>> {
    (case.get("pipeline_sigmas").and_then(Value::as_str) == Some("flux"))
        .then(|| chords::diffusers::flux_pipeline_sigmas(steps))
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Relative tolerance of VP figures: two float32 ulps. chords rebuilds diffusers' float32
/// tables operation for operation, but torch's vectorised square root (SLEEF) is not always
/// correctly rounded: at a few of the 1000 training steps its σ is one ulp off.
const VP_REL: f64 = 2.4e-7;

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1e-3)
}

#[test]
fn grids_and_time_inputs_equal_diffusers() {
    let doc = reference();
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40, "reference.json lost its cases");
    let mut worst_vp = 0.0f64;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let steps = case["steps"].as_u64().expect("steps") as usize;
        let solver_kind = kind(case["solver"].as_str().expect("solver"));
        let mut options = DiffusersOptions::default();
        options.solver = Some(solver_kind);
        options.mu = case.get("mu").and_then(Value::as_f64);
        options.sigmas = pipeline_sigmas(case, steps);
        let built = solver_from_config(&config(case), steps, &options)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let solver = built.solver;
        assert_eq!(solver.steps(), steps, "{name}");
        let times = numbers(&case["timesteps"]);
        assert_eq!(times.len(), steps, "{name}");
        for (i, &t) in times.iter().enumerate() {
            let got = solver.timestep(i).t;
            if solver_kind == SchedulerKind::FlowMatchEuler {
                assert_eq!(got, t, "{name}: timestep {i}");
            } else {
                assert!(close(got, t, VP_REL), "{name}: timestep {i}: {got} vs {t}");
            }
        }
        assert_eq!(
            solver.timestep(steps).t,
            -1.0,
            "{name}: the end is never evaluated"
        );
        match solver_kind {
            SchedulerKind::Ddim => {
                let (ab, landing) = (numbers(&case["alphas_cumprod"]), numbers(&case["landing"]));
                for i in 0..steps {
                    let got = solver.timestep(i).alpha.powi(2);
                    worst_vp = worst_vp.max((got - ab[i]).abs() / ab[i].max(1e-3));
                    assert!(
                        close(got, ab[i], VP_REL),
                        "{name}: ᾱ at {i}: {got} vs {}",
                        ab[i]
                    );
                    let got = solver.point(i + 1).alpha.powi(2);
                    assert!(
                        close(got, landing[i], VP_REL),
                        "{name}: landing of step {i}: {got} vs {}",
                        landing[i]
                    );
                }
            }
            SchedulerKind::EulerDiscrete => {
                // diffusers' log_linear grid holds T + 2 sigmas, of which the steps use T + 1.
                for (i, &want) in numbers(&case["sigmas"]).iter().take(steps + 1).enumerate() {
                    let t = solver.point(i);
                    let got = t.sigma / t.alpha;
                    worst_vp = worst_vp.max((got - want).abs() / want.max(1e-3));
                    assert!(close(got, want, VP_REL), "{name}: σ {i}: {got} vs {want}");
                }
                let init = case["init_noise_sigma"].as_f64().expect("init_noise_sigma");
                let got = solver.initial_noise_scale() / solver.timestep(0).alpha;
                assert!(
                    close(got, init, VP_REL),
                    "{name}: init_noise_sigma {got} vs {init}"
                );
            }
            _ => {
                // Flow grids are diffusers' float32 values exactly.
                let sigmas = numbers(&case["sigmas"]);
                assert_eq!(sigmas.len(), steps + 1, "{name}");
                for (i, &want) in sigmas.iter().enumerate() {
                    assert_eq!(solver.point(i).sigma, want, "{name}: σ {i}");
                }
                assert_eq!(solver.initial_noise_scale(), 1.0);
            }
        }
    }
    eprintln!("largest relative difference of a VP figure: {worst_vp:.2e}");
}

/// The mixture of the reference loops (`means.npy`, σ_data of reference.json).
fn mixture(prediction: chords::Prediction) -> chords::GaussianMixture {
    let means = chords::npy::read(&repo().join("tests/data/diffusers/means.npy")).expect("means");
    let sigma_data = reference()["sigma_data"].as_f64().expect("sigma_data");
    chords::GaussianMixture::new(means.data, means.shape, sigma_data, prediction).expect("mixture")
}

fn unit_noise() -> Vec<f32> {
    chords::npy::read(&repo().join("tests/data/diffusers/x0.npy"))
        .expect("x0")
        .data
}

/// The mixture's output at `x` for a model told `x = alpha·x_data + sigma·ε`.
fn model_output(model: &chords::GaussianMixture, x: &[f64], alpha: f64, sigma: f64) -> Vec<f64> {
    use chords::Model;
    let t = chords::Timestep::new(0, 0.0, alpha, sigma);
    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let out = model
        .evaluate(0, &chords::CpuLatent::from(x), &t)
        .expect("mixture evaluates");
    out.as_slice().iter().map(|&v| f64::from(v)).collect()
}

/// A plain loop of diffusers' `step`, written from diffusers' formulas (DDIMScheduler.step
/// with η = 0, EulerDiscreteScheduler.step without churn on `scale_model_input`'s input,
/// FlowMatchEulerDiscreteScheduler.step), on diffusers' own grid from reference.json.
fn diffusers_loop(case: &Value, model: &chords::GaussianMixture, prediction: &str) -> Vec<f64> {
    let mut x: Vec<f64> = unit_noise().iter().map(|&v| f64::from(v)).collect();
    let steps = case["steps"].as_u64().expect("steps") as usize;
    match case["solver"].as_str().expect("solver") {
        "ddim" => {
            let (ab, landing) = (numbers(&case["alphas_cumprod"]), numbers(&case["landing"]));
            for i in 0..steps {
                let (a, s) = (ab[i].sqrt(), (1.0 - ab[i]).sqrt());
                let out = model_output(model, &x, a, s);
                let (ap, sp) = (landing[i].sqrt(), (1.0 - landing[i]).sqrt());
                for (x, o) in x.iter_mut().zip(&out) {
                    let (x0, eps) = match prediction {
                        "epsilon" => ((*x - s * o) / a, *o),
                        "v_prediction" => (a * *x - s * o, a * o + s * *x),
                        _ => (*o, (*x - a * o) / s),
                    };
                    *x = ap * x0 + sp * eps;
                }
            }
        }
        "euler-discrete" => {
            let sigmas = numbers(&case["sigmas"]);
            let init = case["init_noise_sigma"].as_f64().expect("init_noise_sigma");
            x.iter_mut().for_each(|v| *v *= init);
            for i in 0..steps {
                let (s, next) = (sigmas[i], sigmas[i + 1]);
                let c = 1.0 / (s * s + 1.0).sqrt();
                let input: Vec<f64> = x.iter().map(|v| v * c).collect();
                let out = model_output(model, &input, c, c * s);
                for (x, o) in x.iter_mut().zip(&out) {
                    let x0 = match prediction {
                        "epsilon" => *x - s * o,
                        "v_prediction" => o * (-s / (s * s + 1.0).sqrt()) + *x / (s * s + 1.0),
                        _ => *o,
                    };
                    *x += (*x - x0) / s * (next - s);
                }
            }
        }
        _ => {
            let sigmas = numbers(&case["sigmas"]);
            for i in 0..steps {
                let out = model_output(model, &x, 1.0 - sigmas[i], sigmas[i]);
                for (x, o) in x.iter_mut().zip(&out) {
                    *x += (sigmas[i + 1] - sigmas[i]) * o;
                }
            }
        }
    }
    x
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn sequential_solve_equals_diffusers_loops_and_chords_keeps_its_guarantee() {
    use chords::{
        Backend, Chords, CpuBackend, Event, InitSequence, RunOptions, Sequential, StopRule,
    };
    let doc = reference();
    let mut loops = 0;
    for case in doc["cases"].as_array().expect("cases") {
        let Some(want) = case.get("loop") else {
            continue;
        };
        loops += 1;
        let want = numbers(want);
        let name = case["name"].as_str().expect("name");
        let steps = case["steps"].as_u64().expect("steps") as usize;
        let mut options = DiffusersOptions::default();
        options.solver = Some(kind(case["solver"].as_str().expect("solver")));
        options.mu = case.get("mu").and_then(Value::as_f64);
        options.sigmas = pipeline_sigmas(case, steps);
        let solver = solver_from_config(&config(case), steps, &options)
            .expect("config builds")
            .solver;
        let prediction = solver.prediction();
        let prediction_name = match prediction {
            chords::Prediction::Epsilon => "epsilon",
            chords::Prediction::V => "v_prediction",
            chords::Prediction::Sample => "sample",
            chords::Prediction::Velocity => "flow",
            other => panic!("no diffusers loop for {other:?}"),
        };
        let model = mixture(prediction);
        let ours = diffusers_loop(case, &model, prediction_name);
        let gap = max_abs(&ours, &want);
        assert!(
            gap < 1e-5,
            "{name}: the formula loop is {gap:e} from diffusers' own"
        );

        let mut x0 = unit_noise();
        chords::noise::scale_to_initial(solver.as_ref(), &mut x0);
        let x0 = CpuBackend.upload(0, &x0).expect("upload");
        let hits = |sampler: &mut dyn chords::Sampler<CpuBackend>| {
            let mut hits = Vec::new();
            let opts = RunOptions::default()
                .with_threads(1)
                .with_stop(StopRule::All);
            chords::run(sampler, &CpuBackend, &model, &opts, &mut |e| {
                if let Event::Hit(h) = e {
                    hits.push(h.latent.as_slice().to_vec());
                }
            })
            .expect("run");
            hits
        };
        let sequential = hits(&mut Sequential::new(solver.clone(), x0.clone()))
            .pop()
            .expect("a hit");
        let got: Vec<f64> = sequential.iter().map(|&v| f64::from(v)).collect();
        let gap = max_abs(&got, &want);
        assert!(
            gap < 1e-5,
            "{name}: chords's sequential solve is {gap:e} from diffusers' loop"
        );
        eprintln!("{name}: chords's sequential solve is {gap:.1e} (max abs) from diffusers' loop");

        // CHORDS on the same grid: core 0's hit is the sequential solve, bit for bit.
        if steps >= 8 {
            let init =
                InitSequence::from_strategy(chords::InitStrategy::Uniform, steps, 4).expect("init");
            let last = hits(&mut Chords::new(solver, init, x0).expect("chords"))
                .pop()
                .expect("core 0's hit");
            assert_eq!(
                last, sequential,
                "{name}: core 0 differs from the sequential solve"
            );
        }
    }
    assert!(loops >= 10, "reference.json lost its loops");
}
