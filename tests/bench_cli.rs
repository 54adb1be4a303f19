//! `wgpu-rnn bench`: one parseable `key=value` line per backend, and clear errors for bad options.

use std::collections::HashMap;
use std::process::Command;

fn bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "the CLI panicked: {stderr}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// The `key=value` fields of the line for `backend`.
fn fields(stdout: &str, backend: &str) -> HashMap<String, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("backend={backend} ")))
        .unwrap_or_else(|| panic!("no line for {backend} in:\n{stdout}"));
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn prints_one_line_per_backend_with_the_promised_fields() {
    let shape = [
        "--batch",
        "3",
        "--steps",
        "4",
        "--input-dim",
        "5",
        "--units",
        "6",
    ];
    let (ok, stdout, stderr) =
        bench(&[&shape[..], &["--backend", "both", "--repeats", "3"]].concat());
    assert!(ok, "{stderr}");
    for backend in ["gpu", "cpu"] {
        let f = fields(&stdout, backend);
        for key in ["median_ms", "min_ms", "gflops", "us_per_step"] {
            let v: f64 = f[key]
                .parse()
                .unwrap_or_else(|_| panic!("{key}={}", f[key]));
            assert!(v > 0.0 && v.is_finite(), "{backend} {key}={v}");
        }
        assert!(f["min_ms"].parse::<f64>().unwrap() <= f["median_ms"].parse::<f64>().unwrap());
        assert_eq!(
            (
                f["n"].as_str(),
                f["t"].as_str(),
                f["d"].as_str(),
                f["m"].as_str()
            ),
            ("3", "4", "5", "6")
        );
    }
    assert_eq!(fields(&stdout, "gpu")["strategy"], "auto");
}

#[test]
fn every_strategy_and_option_runs() {
    for strategy in ["per-step", "persistent"] {
        let (ok, stdout, stderr) = bench(&[
            "--backend",
            "gpu",
            "--strategy",
            strategy,
            "--batch",
            "2",
            "--steps",
            "3",
            "--input-dim",
            "2",
            "--units",
            "4",
            "--repeats",
            "1",
            "--return-sequences",
            "--activation",
            "softmax",
        ]);
        assert!(ok, "{stderr}");
        assert_eq!(fields(&stdout, "gpu")["strategy"], strategy);
    }
}

#[test]
fn bad_options_are_errors() {
    for args in [
        &["--repeats", "0"][..],
        &["--activation", "not_an_activation"],
        &["--units", "0"],
        &["--backend", "tpu"],
    ] {
        let mut all = vec![
            "--backend",
            "cpu",
            "--batch",
            "1",
            "--steps",
            "1",
            "--input-dim",
            "1",
            "--units",
            "1",
        ];
        all.extend_from_slice(args);
        let (ok, _, stderr) = bench(&all);
        assert!(!ok, "{args:?} succeeded");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
    }
}

#[test]
fn sizes_too_large_to_allocate_are_refused_not_a_panic() {
    for args in [
        &["--input-dim", "4294967296", "--units", "4294967296"][..],
        &["--units", "18446744073709551615"],
        &[
            "--batch",
            "1000000",
            "--steps",
            "1000000",
            "--input-dim",
            "1000000",
        ],
    ] {
        let (ok, _, stderr) = bench(&[&["--backend", "cpu"][..], args].concat());
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains("more than"), "{args:?}: {stderr}");
    }
}
