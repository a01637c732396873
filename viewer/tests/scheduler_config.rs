//! `--scheduler-config` end to end: `chords render` on diffusers' grids equals diffusers'
//! own loop, `plan --json` lists the grid, `bench` runs on it, and bad configs are refused
//! with one line and exit code 2.
//!
//! The figures compared come from `tests/data/diffusers/reference.json`, written by
//! `tests/data/diffusers/reference.py` with diffusers 0.42.1: each `loop` is the final latent
//! of a plain loop of diffusers' `step` on the Gaussian mixture of `means.npy` from the unit
//! noise `x0.npy` (the same loop, written from diffusers' formulas in Rust, is checked
//! against it in `chords/tests/diffusers_reference.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn chords(args: &[&str]) -> Output {
    let xdg = std::env::temp_dir().join(format!("chords-sc-xdg-{}", std::process::id()));
    fs::create_dir_all(&xdg).expect("runtime dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    Command::new(env!("CARGO_BIN_EXE_chords"))
        .args(args)
        .env("XDG_RUNTIME_DIR", &xdg)
        .output()
        .expect("the chords binary runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn path(rel: &str) -> String {
    repo().join(rel).to_str().expect("utf-8").to_string()
}

fn config(name: &str) -> String {
    path(&format!("assets/schedulers/{name}.json"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chords-sc-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn reference_case(name: &str) -> serde_json::Value {
    let text = fs::read_to_string(repo().join("tests/data/diffusers/reference.json"))
        .expect("reference.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .clone()
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn succeed(args: &[&str]) -> Output {
    let out = chords(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn render_on_a_config_equals_diffusers_loop() {
    // A DDIM config (SD 1.5's PNDM config through DDIMScheduler.from_config), an
    // Euler-discrete one (SDXL) and a flow-matching one (SD3, and Flux-dev with μ).
    for (case, file, extra) in [
        ("sd15-ddim-20", "sd15", vec!["--solver", "ddim"]),
        ("sdxl-30", "sdxl", vec![]),
        ("sd3-28", "sd3", vec![]),
        ("flux-28", "flux-dev", vec!["--mu", "0.5"]),
        (
            "flux-pipeline-28",
            "flux-dev",
            vec!["--mu", "0.75", "--flux-sigmas"],
        ),
    ] {
        let want = numbers(&reference_case(case)["loop"]);
        let steps = reference_case(case)["steps"]
            .as_u64()
            .expect("steps")
            .to_string();
        let dir = scratch(case);
        let means = path("tests/data/diffusers/means.npy");
        let x0 = path("tests/data/diffusers/x0.npy");
        let scheduler = config(file);
        let mut args = vec![
            "render",
            "--model",
            "mixture",
            "--means",
            &means,
            "--sigma-data",
            "0.05",
            "--x0",
            &x0,
            "--sampler",
            "sequential",
            "--scheduler-config",
            &scheduler,
            "--steps",
            &steps,
            "--out",
            dir.to_str().expect("utf-8"),
        ];
        args.extend(extra.iter().copied());
        succeed(&args);
        let report: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("report.json")).expect("report"))
                .expect("json");
        assert_eq!(
            report["scheduler_config"]["file"],
            scheduler.as_str(),
            "{case}"
        );
        let file = report["hits"][0]["file"].as_str().expect("hit file");
        let got = chords::npy::read(&dir.join(file)).expect("hit npy").data;
        assert_eq!(got.len(), want.len(), "{case}");
        let gap = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max);
        assert!(gap <= 1e-5, "{case}: max abs {gap:e} from diffusers' loop");
    }
}

#[test]
fn plan_json_lists_the_grid_diffusers_uses() {
    let sd15 = config("sd15");
    let out = succeed(&[
        "plan",
        "--scheduler-config",
        &sd15,
        "--solver",
        "ddim",
        "--steps",
        "50",
        "--cores",
        "8",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let grid = json["grid"].as_array().expect("grid");
    assert_eq!(grid.len(), 51);
    let case = reference_case("sd15-ddim-50");
    let (times, landing) = (numbers(&case["timesteps"]), numbers(&case["landing"]));
    assert_eq!(grid[0]["timestep"], 981.0);
    for (i, point) in grid.iter().enumerate() {
        assert_eq!(point["index"], i);
        let (a, s) = (
            point["alpha"].as_f64().expect("alpha"),
            point["sigma"].as_f64().expect("sigma"),
        );
        assert!((a * a + s * s - 1.0).abs() < 1e-12, "VP point {i}");
        if i < 50 {
            assert_eq!(point["timestep"].as_f64(), Some(times[i]));
        } else {
            assert!(
                point["timestep"].is_null(),
                "the end point is never evaluated"
            );
        }
        if i > 0 {
            // The point a step lands on: diffusers' ᾱ[prev_timestep] (ᾱ[0] at the end).
            let want = landing[i - 1];
            assert!(
                (a * a - want).abs() <= 2.4e-7 * want,
                "point {i}: {} vs {want}",
                a * a
            );
        }
    }
    // A flow config: x = (1 - σ)·x_data + σ·ε and the time input σ·1000.
    let sd3 = config("sd3");
    let out = succeed(&[
        "plan",
        "--scheduler-config",
        &sd3,
        "--steps",
        "28",
        "--cores",
        "4",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let sigmas = numbers(&reference_case("sd3-28")["sigmas"]);
    for (point, want) in json["grid"].as_array().expect("grid").iter().zip(&sigmas) {
        assert_eq!(point["sigma"].as_f64(), Some(*want));
        assert_eq!(point["alpha"].as_f64(), Some(1.0 - want));
    }
    assert_eq!(json["grid"][0]["timestep"], 1000.0);
}

#[test]
fn bench_runs_on_a_config() {
    let dir = scratch("bench");
    let sd3 = config("sd3");
    let out = succeed(&[
        "bench",
        "--models",
        "mixture",
        "--cores",
        "4",
        "--steps",
        "12",
        "--samples",
        "1",
        "--scheduler-config",
        &sd3,
        "--json",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = json["rows"].as_array().expect("rows");
    let chords_rows: Vec<_> = rows.iter().filter(|r| r["sampler"] == "chords").collect();
    assert!(!chords_rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["latent_rmse"].as_f64().is_some_and(f64::is_finite))
    );
}

/// Runs `args`, expects exit code 2 and one `error:` line containing every `needles`.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let out = chords(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} should print one line, got: {stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(
            lines[0].contains(n),
            "{args:?}: `{}` does not mention `{n}`",
            lines[0]
        );
    }
}

#[test]
fn bad_configs_are_one_line_and_exit_code_2() {
    let dir = scratch("bad");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_string()
    };
    let not_json = write("not-json.json", "{\"_class_name\": ");
    let array = write("array.json", "[1, 2]");
    let no_class = write("no-class.json", "{\"num_train_timesteps\": 1000}");
    let pndm = config("sd15");
    let dpm = write(
        "dpm.json",
        r#"{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 2}"#,
    );
    let sigmoid = write(
        "sigmoid.json",
        r#"{"_class_name": "DDIMScheduler", "clip_sample": false, "beta_schedule": "sigmoid"}"#,
    );
    let clip = write("clip.json", r#"{"_class_name": "DDIMScheduler"}"#);
    let spacing = write(
        "spacing.json",
        r#"{"_class_name": "EulerDiscreteScheduler", "timestep_spacing": 3}"#,
    );
    let folder = dir.to_str().expect("utf-8").to_string();
    let sd3 = config("sd3");
    let flux = config("flux-dev");
    let sdxl = config("sdxl");
    let out = dir.join("out");
    let out = out.to_str().expect("utf-8");
    fn render<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "render",
            "--model",
            "mixture",
            "--sampler",
            "sequential",
            "--out",
            out,
        ];
        v.extend_from_slice(extra);
        v
    }
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            render(out, &["--scheduler-config", &not_json]),
            vec!["not-json.json", "not a JSON object"],
        ),
        (
            render(out, &["--scheduler-config", &array]),
            vec!["array.json", "an array"],
        ),
        (
            render(out, &["--scheduler-config", &no_class]),
            vec!["no `_class_name`", "--solver"],
        ),
        (
            render(out, &["--scheduler-config", &pndm]),
            vec!["PNDMScheduler", "multistep", "one-step", "--solver ddim"],
        ),
        (
            render(out, &["--scheduler-config", &dpm]),
            vec!["DPMSolverMultistepScheduler", "--solver"],
        ),
        (
            render(out, &["--scheduler-config", &sigmoid]),
            vec!["`beta_schedule` = \"sigmoid\""],
        ),
        (
            render(out, &["--scheduler-config", &clip]),
            vec!["`clip_sample` = (default)", "non-linear"],
        ),
        (
            render(out, &["--scheduler-config", &spacing]),
            vec!["`timestep_spacing` = 3"],
        ),
        (
            render(out, &["--scheduler-config", &folder]),
            vec!["not a regular file"],
        ),
        (
            render(out, &["--scheduler-config", "/nonexistent/scheduler.json"]),
            vec!["scheduler config /nonexistent/scheduler.json: cannot open"],
        ),
        (
            render(out, &["--scheduler-config", &flux]),
            vec!["use_dynamic_shifting", "--mu"],
        ),
        (
            render(out, &["--scheduler-config", &sd3, "--mu", "0.5"]),
            vec!["use_dynamic_shifting false"],
        ),
        (
            render(out, &["--scheduler-config", &sd3, "--shift", "3"]),
            vec!["--shift", "the config's fields"],
        ),
        (
            render(out, &["--scheduler-config", &sdxl, "--steps", "2000"]),
            vec!["2000", "num_train_timesteps"],
        ),
        (
            render(out, &["--mu", "0.5"]),
            vec!["--mu", "--scheduler-config"],
        ),
        (
            render(out, &["--scheduler-config", &sdxl, "--flux-sigmas"]),
            vec!["--flux-sigmas", "EulerDiscreteScheduler"],
        ),
        (
            vec![
                "render",
                "--model",
                "emoji",
                "--scheduler-config",
                &sdxl,
                "--out",
                out,
            ],
            vec!["emoji model is a flow-matching model"],
        ),
        (
            vec![
                "plan",
                "--scheduler-config",
                &pndm,
                "--steps",
                "20",
                "--cores",
                "4",
            ],
            vec!["PNDMScheduler", "--solver"],
        ),
        (
            vec!["bench", "--scheduler-config", &sdxl, "--out", out],
            vec!["--models mixture"],
        ),
    ];
    for (args, needles) in &cases {
        assert_refused(args, needles);
    }
    assert!(
        !Path::new(out).exists(),
        "a refused run created its output folder"
    );
}

#[test]
fn unknown_fields_are_named_in_one_warning() {
    let dir = scratch("unknown");
    let config = dir.join("config.json");
    fs::write(
        &config,
        r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0, "colour": "blue", "skip_prk_steps": true}"#,
    )
    .expect("write");
    let out = succeed(&[
        "plan",
        "--scheduler-config",
        config.to_str().expect("utf-8"),
        "--steps",
        "10",
        "--cores",
        "4",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("colour") && !warnings[0].contains("skip_prk_steps"),
        "{stderr}"
    );
}
