//! Hostile paths and settings: each ends within seconds with exit code 2 and one `error:`
//! line, its peak memory stays under 500 MB, and it touches no other run's output.
//!
//! Peak memory, on Linux (elsewhere the memory check is skipped), is measured twice: the
//! child's `VmHWM` (resident high-water mark) read from `/proc/PID/status` every few
//! milliseconds while it runs, shown per command; and the exact figure the kernel keeps,
//! the largest peak resident set of every child reaped so far (`getrusage(RUSAGE_CHILDREN)`
//! `ru_maxrss`), which catches a child that grew and exited between two readings.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEAK_LIMIT_KB: u64 = 500 * 1024;
const TIME_LIMIT: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chords-hostile-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn spawn(args: &[&str]) -> Child {
    let xdg = std::env::temp_dir().join(format!("chords-hostile-xdg-{}", std::process::id()));
    fs::create_dir_all(&xdg).expect("runtime dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    Command::new(env!("CARGO_BIN_EXE_chords"))
        .args(args)
        .env("XDG_RUNTIME_DIR", &xdg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the chords binary starts")
}

/// The child's resident high-water mark in KiB, while it runs.
fn high_water_kb(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The largest peak resident set, in KiB, of any child this test process has reaped.
#[cfg(target_os = "linux")]
fn children_peak_kb() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    u64::try_from(usage.max_rss()).unwrap_or(0)
}

#[cfg(not(target_os = "linux"))]
fn children_peak_kb() -> u64 {
    0
}

struct Finished {
    code: Option<i32>,
    stderr: String,
    peak_kb: Option<u64>,
    took: Duration,
}

/// Waits for `child`, sampling its peak memory; kills it past the time limit.
fn finish(mut child: Child) -> Finished {
    let start = Instant::now();
    let mut peak = None;
    let status = loop {
        if let Some(kb) = high_water_kb(child.id()) {
            peak = Some(peak.map_or(kb, |p: u64| p.max(kb)));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            panic!("still running after {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(3));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    Finished {
        code: status.code(),
        stderr,
        peak_kb: peak,
        took: start.elapsed(),
    }
}

/// Runs `args`: exit code 2, one `error:` line naming every needle, bounded memory.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let f = finish(spawn(args));
    assert_eq!(f.code, Some(2), "{args:?}: {}", f.stderr);
    assert!(
        !f.stderr.contains("panicked"),
        "{args:?} panicked: {}",
        f.stderr
    );
    let lines: Vec<&str> = f.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} should print one line, got: {}",
        f.stderr
    );
    assert!(lines[0].starts_with("error: "), "{}", f.stderr);
    for n in needles {
        assert!(
            lines[0].contains(n),
            "{args:?}: `{}` does not mention `{n}`",
            lines[0]
        );
    }
    if cfg!(target_os = "linux") {
        let peak = f.peak_kb.unwrap_or(0);
        assert!(peak < PEAK_LIMIT_KB, "{args:?}: peak {peak} KiB");
        let reaped = children_peak_kb();
        assert!(
            reaped < PEAK_LIMIT_KB,
            "{args:?}: a child's peak reached {reaped} KiB"
        );
    }
    eprintln!(
        "{:<70} {:>6.2} s {:>7} KiB (largest reaped child so far {} KiB)",
        args.join(" ").chars().take(70).collect::<String>(),
        f.took.as_secs_f64(),
        f.peak_kb.unwrap_or(0),
        children_peak_kb()
    );
}

/// A FIFO at `path` (via mkfifo(1)); false where there is none.
fn make_fifo(path: &Path) -> bool {
    Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// A version-2 `.npy` header declaring a header of `len` bytes, then a few bytes.
fn enormous_header(len: u32) -> Vec<u8> {
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(b"{'descr': '<f4', ");
    bytes
}

#[test]
fn hostile_paths_are_refused_quickly_and_in_bounded_memory() {
    let dir = scratch("paths");
    let d = |n: &str| dir.join(n).to_str().expect("utf-8").to_string();
    let fifo = d("fifo.npy");
    assert!(make_fifo(Path::new(&fifo)) || !cfg!(unix), "mkfifo failed");
    fs::write(d("header.npy"), enormous_header(0xFFFF_FFF0)).expect("write");
    // A header claiming 1 GiB of data over 16 bytes.
    let claim = "{'descr': '<f4', 'fortran_order': False, 'shape': (268435456,), }";
    let mut lying = b"\x93NUMPY\x01\x00".to_vec();
    lying.extend_from_slice(&(claim.len() as u16).to_le_bytes());
    lying.extend_from_slice(claim.as_bytes());
    lying.extend_from_slice(&[0; 16]);
    fs::write(d("lying.npy"), &lying).expect("write");
    let out = d("out");
    let r = |extra: &[&str]| {
        let mut v = vec!["render".to_string(), "--out".into(), out.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            r(&["--x0", "/dev/zero"]),
            vec!["/dev/zero", "not a regular file", "device"],
        ),
        (r(&["--means", "/dev/zero"]), vec!["/dev/zero", "device"]),
        (
            r(&["--model", "emoji", "--weights", "/dev/zero"]),
            vec!["/dev/zero", "device"],
        ),
        (
            r(&["--weights", "/dev/urandom"]),
            vec!["/dev/urandom", "device"],
        ),
        (
            r(&["--scheduler-config", "/dev/zero"]),
            vec!["/dev/zero", "device"],
        ),
        (r(&["--x0", &fifo]), vec!["fifo.npy", "pipe"]),
        (r(&["--weights", &fifo]), vec!["fifo.npy", "pipe"]),
        (r(&["--scheduler-config", &fifo]), vec!["fifo.npy", "pipe"]),
        (
            r(&["--means", dir.to_str().expect("utf-8")]),
            vec!["directory"],
        ),
        (
            r(&["--means", &d("header.npy")]),
            vec!["header.npy", "header of"],
        ),
        (
            r(&["--means", &d("lying.npy")]),
            vec!["lying.npy", "holds 16 bytes"],
        ),
        (
            vec![
                "train".into(),
                "--init".into(),
                "/dev/zero".into(),
                "--checkpoint".into(),
                d("ckpt"),
            ],
            vec!["/dev/zero", "device"],
        ),
    ];
    for (args, needles) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&args, needles);
    }
    assert!(
        !Path::new(&out).exists(),
        "a refused run created its output folder"
    );
}

#[test]
fn huge_steps_and_cores_are_refused_before_any_work() {
    let dir = scratch("huge");
    let out = dir.join("out");
    let out = out.to_str().expect("utf-8");
    for sampler in ["chords", "sequential", "paradigms", "srds"] {
        let base = [
            "render",
            "--model",
            "mixture",
            "--sampler",
            sampler,
            "--out",
            out,
        ];
        let with = |extra: &[&'static str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        assert_refused(
            &with(&["--steps", "1000000000"]),
            &["--steps 1000000000", "limit"],
        );
        if sampler != "sequential" {
            assert_refused(
                &with(&["--steps", "50", "--cores", "100000000"]),
                &["--cores 100000000", "limit"],
            );
        }
    }
    assert_refused(
        &["plan", "--steps", "1000000000", "--cores", "8"],
        &["limit"],
    );
    assert_refused(
        &["bench", "--steps", "1000000000", "--out", out],
        &["limit"],
    );
    assert!(!Path::new(out).exists());
}

#[test]
fn runs_whose_latents_exceed_the_memory_budget_are_refused_before_any_work() {
    let dir = scratch("budget");
    // One mixture component of 4×1024×1024 elements: 16 MiB a latent.
    let means = dir.join("means.npy");
    let shape = [1usize, 4, 1024, 1024];
    chords::npy::write(&means, &shape, &vec![0.0; shape.iter().product()]).expect("write");
    let means = means.to_str().expect("utf-8");
    let out = dir.join("out");
    let out = out.to_str().expect("utf-8");
    for (sampler, steps, cores, live) in [
        ("paradigms", "100000", "8", "100020 latents"),
        ("chords", "1000", "1024", "6144 latents"),
        ("srds", "10000", "1024", "3076 latents"),
    ] {
        assert_refused(
            &[
                "render",
                "--means",
                means,
                "--sampler",
                sampler,
                "--steps",
                steps,
                "--cores",
                cores,
                "--out",
                out,
            ],
            &[sampler, live, "4194304 elements", "limit of 8 GiB"],
        );
    }
    assert!(!Path::new(out).exists());
}

#[test]
fn options_that_do_not_apply_are_refused() {
    let dir = scratch("options");
    let out = dir.join("out");
    let out = out.to_str().expect("utf-8");
    let mixture = |extra: &[&'static str]| {
        let mut v = vec!["render", "--model", "mixture", "--out", out];
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            mixture(&["--guidance", "2"]),
            vec!["--guidance", "--model emoji"],
        ),
        (
            mixture(&["--weights", "w.bpk"]),
            vec!["--weights", "--model emoji"],
        ),
        (
            mixture(&["--emoji", "dog"]),
            vec!["--emoji", "--model emoji"],
        ),
        (
            mixture(&["--style", "twemoji"]),
            vec!["--style", "--model emoji"],
        ),
        (
            vec![
                "render",
                "--model",
                "emoji",
                "--sigma-data",
                "0.1",
                "--out",
                out,
            ],
            vec!["--sigma-data", "--model mixture"],
        ),
        (
            mixture(&["--tolerance", "0.1"]),
            vec!["--tolerance", "paradigms or srds"],
        ),
        (
            mixture(&["--sampler", "sequential", "--init", "0-2"]),
            vec!["--init", "--sampler chords"],
        ),
        (
            mixture(&["--sampler", "srds", "--calibrate"]),
            vec!["--calibrate", "--sampler chords"],
        ),
        (
            mixture(&["--sampler", "srds", "--objective", "stream"]),
            vec!["--objective", "--sampler chords"],
        ),
        (
            mixture(&["--objective", "stream"]),
            vec!["--objective", "--strategy optimal"],
        ),
        (
            mixture(&["--strategy", "optimal", "--objective", "fastest"]),
            vec!["fastest", "first-hit"],
        ),
        (
            mixture(&["--frame-kind", "point"]),
            vec!["--frame-kind", "--frames"],
        ),
        (
            mixture(&["--sampler", "srds", "--frames", "--frame-kind", "estimate"]),
            vec!["--frame-kind estimate", "give no estimates"],
        ),
        (
            vec!["view", "--stop", "sometimes", "--out", out],
            vec!["sometimes", "core-index:N"],
        ),
        (
            vec!["bench", "--psnr", "nan", "--out", out],
            vec!["--psnr", "positive, finite"],
        ),
        (
            vec!["bench", "--psnr=-3", "--out", out],
            vec!["--psnr", "positive, finite"],
        ),
        (
            vec!["bench", "--calibration-seeds", "0", "--out", out],
            vec!["--calibration-seeds 0", "1 to 100"],
        ),
        (
            vec!["bench", "--wall", "gpu-magic", "--out", out],
            vec!["gpu-magic", "--wall"],
        ),
        (
            mixture(&["--adapters", "lavapipe"]),
            vec!["--adapters", "--backend wgpu"],
        ),
        (
            mixture(&["--devices", "per-core"]),
            vec!["--devices", "--backend wgpu"],
        ),
        (
            mixture(&["--shift", "3", "--solver", "ddim"]),
            vec!["--shift", "--solver euler"],
        ),
        (
            mixture(&["--spacing", "leading"]),
            vec!["--spacing", "VP solvers"],
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
fn two_runs_on_one_folder_never_mix() {
    let dir = scratch("concurrent");
    let out = dir.join("out");
    let out_s = out.to_str().expect("utf-8");
    // The first run: the emoji network's sequential solve, a few seconds on two cores.
    let first = spawn(&[
        "render",
        "--sampler",
        "sequential",
        "--steps",
        "60",
        "--out",
        out_s,
    ]);
    let lock = out.join(".chords-run.lock");
    let start = Instant::now();
    while !lock.exists() {
        assert!(
            start.elapsed() < TIME_LIMIT,
            "the first run never claimed its folder"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_refused(
        &[
            "render",
            "--model",
            "mixture",
            "--steps",
            "20",
            "--out",
            out_s,
            "--overwrite",
        ],
        &["in use by another chords run"],
    );
    let f = finish(first);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    assert_eq!(
        (report["sampler"].as_str(), report["rounds"].as_u64()),
        (Some("sequential"), Some(60))
    );
    assert!(!lock.exists(), "the lock outlived its run");
    let names: Vec<String> = fs::read_dir(&out)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "temporary files left: {names:?}"
    );

    // A lock left by a run that was killed (its process is gone) is taken over.
    fs::write(&lock, "4194303\n").expect("stale lock");
    let f = finish(spawn(&[
        "render",
        "--model",
        "mixture",
        "--steps",
        "20",
        "--out",
        out_s,
        "--overwrite",
    ]));
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(!lock.exists());
}
