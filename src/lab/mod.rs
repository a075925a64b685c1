//! The lab: runs scenarios (../shared/SCENARIOS.md) against real node processes and
//! checks what every node persisted.

pub mod cluster;
pub mod scenario;
