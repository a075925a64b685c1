//! The lab: runs scenarios (../shared/SCENARIOS.md) against real node processes and
//! checks what every node persisted.

pub mod checks;
pub mod cluster;
pub mod history;
pub mod runner;
pub mod scenario;
pub mod view;
pub mod watch;
