"""Reference figures from diffusers itself, for chords's scheduler-config tests.

Run with diffusers 0.42.1 and torch 2.15 (CPU is enough):

    python tests/data/diffusers/reference.py

It writes, beside this file:
* reference.json: for every case (a config, the scheduler class it is sampled with, a step
  count, mu for dynamic shifting, and `pipeline_sigmas: flux` where the sigmas FluxPipeline
  passes to set_timesteps are given), what diffusers' `set_timesteps` gives (`timesteps`;
  DDIM: `alphas_cumprod` at each timestep and at each step's `prev_timestep` (`landing`);
  Euler: `sigmas` and `init_noise_sigma`), and for the `loop` cases the final latent of a
  plain loop of diffusers' `step` on the Gaussian-mixture denoiser below, from `x0.npy`;
* means.npy (M, C, H, W) and x0.npy (C, H, W), the mixture and the unit noise of the loops.

The mixture denoiser is the exact one chords's `GaussianMixture` computes (DESIGN.md 6):
x = a*x_data + s*eps, V = a^2 sd^2 + s^2, posterior weights w_m of N(a*mu_m, V*I), and
E[x_data|x] = mu_bar + (a sd^2/V)(x - a mu_bar), E[eps|x] = (s/V)(x - a mu_bar).
"""

import json
import pathlib

import numpy as np
import torch
import diffusers
from diffusers import DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

HERE = pathlib.Path(__file__).resolve().parent
CONFIGS = HERE.parent.parent.parent / "assets" / "schedulers"
CLASSES = {
    "ddim": DDIMScheduler,
    "euler-discrete": EulerDiscreteScheduler,
    "euler": FlowMatchEulerDiscreteScheduler,
}
SIGMA_DATA = 0.05


def shipped(name):
    return json.loads((CONFIGS / f"{name}.json").read_text())


def mixture_data():
    c, h, w, m = 3, 4, 4, 3
    k = np.arange(m * c * h * w, dtype=np.float64).reshape(m, c, h, w)
    means = (0.8 * np.sin(0.37 * k + 1.0)).astype(np.float32)
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal((c, h, w)).astype(np.float32)
    return means, x0


def denoise(means, x, a, s, prediction):
    x = x.astype(np.float64)
    mu = means.astype(np.float64)
    v = a * a * SIGMA_DATA**2 + s * s
    d = x[None] - a * mu
    logw = -(d.reshape(len(mu), -1) ** 2).sum(1) / (2 * v)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mu_bar = (w[:, None, None, None] * mu).sum(0)
    r = x - a * mu_bar
    x_data = mu_bar + (a * SIGMA_DATA**2 / v) * r
    eps = (s / v) * r
    return {
        "epsilon": eps,
        "v_prediction": a * eps - s * x_data,
        "sample": x_data,
        "flow": eps - x_data,
    }[prediction]


def build(case):
    config = case["config"] if isinstance(case["config"], dict) else shipped(case["config"])
    sched = CLASSES[case["solver"]].from_config(config)
    kwargs = {"mu": case["mu"]} if "mu" in case else {}
    if case.get("pipeline_sigmas") == "flux":
        # What FluxPipeline passes to set_timesteps.
        n = case["steps"]
        kwargs["sigmas"] = np.linspace(1.0, 1 / n, n)
    sched.set_timesteps(case["steps"], **kwargs)
    return sched


def describe(case, sched):
    out = {"timesteps": [float(t) for t in sched.timesteps]}
    if case["solver"] == "ddim":
        n = sched.config.num_train_timesteps
        ratio = n // case["steps"]
        ac = sched.alphas_cumprod
        out["alphas_cumprod"] = [float(ac[int(t)]) for t in sched.timesteps]
        out["landing"] = [
            float(ac[int(t) - ratio]) if int(t) - ratio >= 0 else float(sched.final_alpha_cumprod)
            for t in sched.timesteps
        ]
    else:
        out["sigmas"] = [float(s) for s in sched.sigmas]
        if case["solver"] == "euler-discrete":
            out["init_noise_sigma"] = float(sched.init_noise_sigma)
    return out


def loop(case, sched, means, x0):
    x = torch.from_numpy(x0.copy()) * sched.init_noise_sigma if case["solver"] != "euler" else torch.from_numpy(x0.copy())
    prediction = "flow" if case["solver"] == "euler" else sched.config.prediction_type
    for i, t in enumerate(sched.timesteps):
        if case["solver"] == "ddim":
            ab = float(sched.alphas_cumprod[int(t)])
            a, s = ab**0.5, (1 - ab) ** 0.5
            inp = x
        elif case["solver"] == "euler-discrete":
            inp = sched.scale_model_input(x, t)
            sig = float(sched.sigmas[i])
            a, s = 1 / (sig * sig + 1) ** 0.5, sig / (sig * sig + 1) ** 0.5
        else:
            sig = float(sched.sigmas[i])
            a, s = 1 - sig, sig
            inp = x
        out = denoise(means, inp.numpy(), a, s, prediction)
        x = sched.step(torch.from_numpy(out.astype(np.float32)), t, x).prev_sample
    return [float(v) for v in x.numpy().reshape(-1)]


def cases():
    sd = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
    out = []
    for steps in [1, 3, 7, 20, 50]:
        out.append({"name": f"sd15-ddim-{steps}", "config": "sd15", "solver": "ddim", "steps": steps})
    for steps in [20, 50]:
        out.append({"name": f"sd15-euler-{steps}", "config": "sd15", "solver": "euler-discrete", "steps": steps})
    for steps in [3, 20, 30, 50]:
        out.append({"name": f"sdxl-{steps}", "config": "sdxl", "solver": "euler-discrete", "steps": steps})
    out.append({"name": "sdxl-ddim-25", "config": "sdxl", "solver": "ddim", "steps": 25})
    for steps in [3, 25, 50]:
        out.append({"name": f"sd21v-{steps}", "config": "sd21-v", "solver": "ddim", "steps": steps})
    for steps in [1, 7, 28, 50]:
        out.append({"name": f"sd3-{steps}", "config": "sd3", "solver": "euler", "steps": steps})
    for steps, mu in [(4, 1.15), (28, 0.5), (50, 0.8)]:
        out.append({"name": f"flux-{steps}", "config": "flux-dev", "solver": "euler", "steps": steps, "mu": mu})
    for steps, mu in [(4, 1.15), (28, 0.75), (50, 1.0)]:
        out.append({"name": f"flux-pipeline-{steps}", "config": "flux-dev", "solver": "euler", "steps": steps, "mu": mu, "pipeline_sigmas": "flux"})
    out.append({"name": "sd3-pipeline-sigmas-10", "config": "sd3", "solver": "euler", "steps": 10, "pipeline_sigmas": "flux"})
    zsnr = dict(sd, _class_name="DDIMScheduler", clip_sample=False, prediction_type="v_prediction",
                timestep_spacing="trailing", rescale_betas_zero_snr=True)
    for steps in [3, 10, 25]:
        out.append({"name": f"ddim-zsnr-{steps}", "config": zsnr, "solver": "ddim", "steps": steps})
    for steps in [7, 50]:
        out.append({"name": f"ddim-linspace-{steps}", "config": dict(sd, _class_name="DDIMScheduler", clip_sample=False, timestep_spacing="linspace"), "solver": "ddim", "steps": steps})
    out.append({"name": "ddim-cosine-20", "config": {"_class_name": "DDIMScheduler", "clip_sample": False, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "sample"}, "solver": "ddim", "steps": 20})
    trained = [float(b) for b in np.linspace(0.001, 0.05, 50) ** 1.5]
    out.append({"name": "ddim-trained-7", "config": {"_class_name": "DDIMScheduler", "clip_sample": False, "num_train_timesteps": 50, "trained_betas": trained, "set_alpha_to_one": False}, "solver": "ddim", "steps": 7})
    euler = dict(sd, _class_name="EulerDiscreteScheduler")
    out.append({"name": "euler-karras-20", "config": dict(euler, use_karras_sigmas=True), "solver": "euler-discrete", "steps": 20})
    out.append({"name": "euler-loglinear-10", "config": dict(euler, interpolation_type="log_linear"), "solver": "euler-discrete", "steps": 10})
    for steps in [3, 25]:
        out.append({"name": f"euler-trailing-{steps}", "config": dict(euler, timestep_spacing="trailing"), "solver": "euler-discrete", "steps": steps})
    out.append({"name": "euler-linspace-30", "config": euler, "solver": "euler-discrete", "steps": 30})
    out.append({"name": "euler-zsnr-v-10", "config": dict(euler, timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction"), "solver": "euler-discrete", "steps": 10})
    out.append({"name": "euler-sigma-min-10", "config": dict(euler, final_sigmas_type="sigma_min"), "solver": "euler-discrete", "steps": 10})
    out.append({"name": "euler-exponential-12", "config": dict(euler, use_exponential_sigmas=True), "solver": "euler-discrete", "steps": 12})
    out.append({"name": "euler-continuous-v-10", "config": dict(euler, use_karras_sigmas=True, timestep_type="continuous", prediction_type="v_prediction", sigma_min=0.002, sigma_max=80.0), "solver": "euler-discrete", "steps": 10})
    flow = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0}
    out.append({"name": "flow-terminal-20", "config": dict(flow, shift_terminal=0.1), "solver": "euler", "steps": 20})
    out.append({"name": "flow-karras-10", "config": dict(flow, use_karras_sigmas=True), "solver": "euler", "steps": 10})
    out.append({"name": "flow-exponential-10", "config": dict(flow, use_exponential_sigmas=True), "solver": "euler", "steps": 10})
    out.append({"name": "flow-linear-shift-10", "config": dict(flow, use_dynamic_shifting=True, time_shift_type="linear"), "solver": "euler", "steps": 10, "mu": 2.0})
    return out


LOOPS = {"sd15-ddim-20", "sd21v-25", "sdxl-30", "euler-karras-20", "euler-linspace-30",
         "euler-loglinear-10", "ddim-zsnr-10", "sd3-28", "flux-28", "flow-terminal-20", "ddim-linspace-7",
         "flux-pipeline-28"}


def main():
    means, x0 = mixture_data()
    np.save(HERE / "means.npy", means)
    np.save(HERE / "x0.npy", x0)
    results = []
    for case in cases():
        sched = build(case)
        entry = {k: v for k, v in case.items()}
        entry.update(describe(case, sched))
        if case["name"] in LOOPS:
            entry["loop"] = loop(case, sched, means, x0)
        results.append(entry)
    doc = {
        "generated_by": "tests/data/diffusers/reference.py",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "sigma_data": SIGMA_DATA,
        "cases": results,
    }
    (HERE / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(results)} cases, {len(LOOPS)} loops")


if __name__ == "__main__":
    main()
