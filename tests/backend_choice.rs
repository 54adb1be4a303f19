//! The backend users get by default: `--backend auto` (and `Backend::auto`) runs on a hardware
//! GPU when there is one and on the CPU path when the only adapter is a software one (lavapipe on
//! CI), saying why in one line; `--backend gpu` and `WGPU_ADAPTER_NAME` still reach a software
//! adapter.

use std::path::{Path, PathBuf};
use std::process::Command;

use wgpu_rnn::{ADAPTER_NAME_VARIABLE, Backend, GpuContext, GpuOptions};

fn layer_case() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras/act_elu")
}

/// Runs `wgpu-rnn run` on a Keras layer fixture with `extra` arguments and `env`; returns
/// stderr, after checking that it succeeded.
fn run(extra: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let case = layer_case();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"));
    command
        .arg("run")
        .arg(case.join("weights.npz"))
        .arg(case.join("input.npy"))
        .arg("-o")
        .arg(dir.path().join("out.npy"))
        .args(["--activation", "elu", "--return-sequences"])
        .args(extra)
        .env_remove(ADAPTER_NAME_VARIABLE);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run failed: {stderr}");
    assert!(dir.path().join("out.npy").exists());
    stderr
}

/// The lines of stderr that wgpu-rnn itself wrote (not a driver's).
fn notes(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("note:")).collect()
}

fn only_software_adapters() -> Option<wgpu::AdapterInfo> {
    let info = GpuContext::chosen_adapter(&GpuOptions::default()).ok()?;
    (info.device_type == wgpu::DeviceType::Cpu).then_some(info)
}

#[test]
fn auto_runs_the_cpu_path_when_the_only_adapter_is_software_and_says_why() {
    let stderr = run(&[], &[]);
    let notes = notes(&stderr);
    match only_software_adapters() {
        Some(info) => {
            assert_eq!(notes.len(), 1, "one note: {stderr}");
            assert!(
                notes[0].contains("running on the CPU") && notes[0].contains(&info.name),
                "{stderr}"
            );
            let (backend, note) = Backend::auto();
            assert_eq!(backend.name(), "cpu");
            assert!(note.unwrap().contains("software"));
        }
        None => assert!(notes.is_empty(), "a hardware GPU runs it: {stderr}"),
    }
}

#[test]
fn a_software_adapter_is_still_used_when_asked_for() {
    let Some(info) = only_software_adapters() else {
        return;
    };
    // --backend gpu runs it, quietly.
    assert!(notes(&run(&["--backend", "gpu"], &[])).is_empty());
    // So does auto, when the adapter is named.
    let name = info.name.split_whitespace().next().unwrap().to_string();
    let stderr = run(&[], &[(ADAPTER_NAME_VARIABLE, name.as_str())]);
    assert!(notes(&stderr).is_empty(), "{stderr}");
}

#[test]
fn an_adapter_name_that_matches_nothing_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let case = layer_case();
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .arg("run")
        .arg(case.join("weights.npz"))
        .arg(case.join("input.npy"))
        .arg("-o")
        .arg(dir.path().join("out.npy"))
        .args(["--activation", "elu", "--backend", "gpu"])
        .env(ADAPTER_NAME_VARIABLE, "no-such-adapter-anywhere")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no-such-adapter-anywhere"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn info_marks_software_adapters() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
        .arg("info")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for a in GpuContext::adapters() {
        let line = stdout
            .lines()
            .find(|l| l.contains(&a.info.name))
            .unwrap_or_else(|| panic!("{} not listed:\n{stdout}", a.info.name));
        assert_eq!(
            line.contains("software"),
            a.info.device_type == wgpu::DeviceType::Cpu,
            "{line}"
        );
    }
    // Each adapter says whether it has subgroups, as the library reports it.
    let said: Vec<bool> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("subgroup operations: "))
        .map(|v| v == "yes")
        .collect();
    let has: Vec<bool> = GpuContext::adapters().iter().map(|a| a.subgroups).collect();
    assert_eq!(said, has, "{stdout}");
}
