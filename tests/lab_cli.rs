//! `raftchat lab run` from the outside: exit status 0 for a passing scenario, 1 for a
//! failing one, 2 for a malformed or missing file; and no node outlives a Ctrl-C.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn lab(dir: &Path, files: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftchat"))
        .args(["lab", "run", "--quiet", "--out"])
        .arg(dir.join("runs"))
        .args(files)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const PASSING: &str = "name: tiny
cluster:
  nodes: 1
steps:
  - start: all
  - wait: {leader: any}
  - register: {user: alice, password: pw}
  - list_accounts: {expect: {accounts: [alice]}}
";

#[test]
fn a_passing_scenario_exits_0_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tiny.yaml", PASSING);
    let (code, out, err) = lab(dir.path(), &[&file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tiny"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("tiny") && l.contains("pass")),
        "{out}"
    );
    // A passing run's folder is removed.
    let runs = std::fs::read_dir(dir.path().join("runs")).unwrap().count();
    assert_eq!(runs, 0);
}

#[test]
fn a_failing_scenario_exits_1_naming_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let text = PASSING.replace("accounts: [alice]", "accounts: [bob]");
    let file = write(dir.path(), "wrong.yaml", &text);
    let (code, out, err) = lab(dir.path(), &[&file]);
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "raftchat lab: tiny: FAILED: {}:8: list_accounts: {{expect: {{accounts: [bob]}}}}: \
         expected accounts [\"bob\"], got [\"alice\"]",
        file.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("node logs: n1: "), "{err}");
    assert!(err.contains("run folder kept at"), "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("tiny") && l.contains("FAIL")),
        "{out}"
    );
}

#[test]
fn a_malformed_file_exits_2_with_its_position_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let text = PASSING.replace("user: alice, password", "user: alice, pasword");
    let file = write(dir.path(), "typo.yaml", &text);
    let (code, out, err) = lab(dir.path(), &[&file]);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "nothing ran: {out}");
    let prefix = format!("raftchat lab: {}:7:", file.display());
    assert!(err.starts_with(&prefix), "{err}");
    assert!(err.contains("pasword"), "the offending key is named: {err}");
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn a_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = lab(dir.path(), &[Path::new("/nonexistent/scenario.yaml")]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("raftchat lab: /nonexistent/scenario.yaml:0:0: cannot read:"),
        "{err}"
    );
}

/// The node processes whose command line mentions `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("node") && cmdline.contains(marker) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn ctrl_c_leaves_no_node_running() {
    let dir = tempfile::tempdir().unwrap();
    let long = "name: long
cluster:
  nodes: 3
steps:
  - start: all
  - wait: {leader: any}
  - pause: follower
  - sleep: 2m
";
    let file = write(dir.path(), "long.yaml", long);
    let runs = dir.path().join("runs");
    let mut lab = Command::new(env!("CARGO_BIN_EXE_raftchat"))
        .args(["lab", "run", "--quiet", "--out"])
        .arg(&runs)
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marker = runs.display().to_string();
    let started = Instant::now();
    while processes_with(&marker).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the nodes never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the scenario reach its sleep, with a paused node among them.
    std::thread::sleep(Duration::from_secs(2));
    kill(Pid::from_raw(lab.id() as i32), Signal::SIGINT).unwrap();
    let status = lab.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let started = Instant::now();
    while !processes_with(&marker).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "orphans: {:?}",
            processes_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
