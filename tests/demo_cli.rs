//! `raftchat lab demo --fast`, as CI runs it: the whole story of scenarios/demo.yaml, its
//! narration, the closing table of every node's disk read offline, exit 0, and nothing
//! left running. A demo that fails says what and where in one line and exits 1.

use std::path::Path;
use std::process::Command;

fn demo(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftchat"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["lab", "demo", "--fast", "--out"])
        .arg(dir.join("runs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Node processes whose command line mentions `marker` (their data directories do).
fn processes_with(marker: &str) -> usize {
    let mut found = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            found += 1;
        }
    }
    found
}

#[test]
fn the_demo_tells_the_whole_story_and_every_disk_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = demo(dir.path(), &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // The narration, in order.
    let says: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(">> "))
        .collect();
    assert_eq!(says.len(), 9, "{out}");
    assert!(says[0].starts_with("Five servers start"), "{says:?}");
    assert!(says[2].starts_with("The leader crashes"), "{says:?}");
    // Live delivery to a follower, the refusal without a majority, the sixth node.
    assert!(
        out.contains("alice's screen shows  bob: \"hi alice!\""),
        "{out}"
    );
    assert!(out.contains("ok: unavailable: no quorum"), "{out}");
    assert!(out.contains("n6 joined as a voter and caught up"), "{out}");
    // The closing table: six nodes, checksums verified, one state.
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with('n') && l.contains(" ok "))
        .collect();
    assert_eq!(rows.len(), 6, "{out}");
    let prints: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(prints.len(), 1, "{out}");
    assert!(out.contains("all 6 nodes applied entry"), "{out}");
    assert!(out.contains("demo passed in"), "{out}");
    // Nothing left: no node process, and no run folder (it passed).
    assert_eq!(processes_with(&dir.path().display().to_string()), 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("runs")).unwrap().count(),
        0
    );
}

#[test]
fn a_failing_demo_says_what_and_where_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad-demo.yaml");
    std::fs::write(
        &file,
        "name: bad-demo
cluster:
  nodes: 3
steps:
  - say: Three servers start.
  - start: all
  - wait: {leader: any}
  - register: {user: alice, password: pw}
  - read: {user: alice, with: alice, expect: {count: 5}}
",
    )
    .unwrap();
    let (code, _out, err) = demo(dir.path(), &[file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("raftchat lab: demo failed: ")
            && lines[0].contains("bad-demo.yaml:9: read:")
            && lines[0].contains("expected 5, got 0 messages"),
        "{err}"
    );
    assert_eq!(processes_with(&dir.path().display().to_string()), 0);
}
