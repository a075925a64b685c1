//! Every scenario in `scenarios/` runs against real node processes, and the chat state its
//! `snapshot:` steps recorded is compared with `snapshots/` (insta). In CI a missing or
//! different snapshot fails the test; `cargo insta review` is how a person accepts one.

use std::path::PathBuf;

use raftchat::lab::runner::{self, RunOptions};
use raftchat::lab::scenario;

#[test]
fn scenarios() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::glob!("../scenarios", "*.yaml", |path| {
            let s = scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
            let mut opts = RunOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_raftchat")));
            opts.out_dir = out.path().to_path_buf();
            opts.verbose = false;
            let result = runtime.block_on(runner::run(&s, &opts));
            assert!(
                result.passed,
                "{} failed: {}\nchecks: {:?}",
                s.name,
                result.failure.unwrap_or_default(),
                result.failed_checks
            );
            let text: String = result
                .dumps
                .iter()
                .map(|(label, dump)| format!("== {label}\n{dump}"))
                .collect();
            insta::assert_snapshot!(text);
        });
    });
}
