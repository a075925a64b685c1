# The two commands a newcomer needs: `make demo` and `make test`.

CARGO ?= cargo

.PHONY: test demo bench sim build fmt lint

## Run every test: unit tests, the Raft simulator (1,000 seeds) and the integration tests.
test:
	$(CARGO) test

## Watch a cluster survive: the lab runs a leader dying mid-conversation and a partition
## that cuts the leader off, printing each step and the state of every node. (The
## presentation mode, with a live view and pacing, is still to come.)
demo:
	$(CARGO) build --release
	./target/release/raftchat lab run scenarios/leader-failover.yaml scenarios/minority-partition.yaml

## Benchmarks.
bench:
	$(CARGO) bench --bench raft_core

## The simulator at scale: SEEDS seeds (100,000 by default) of random faults.
SEEDS ?= 100000
sim:
	RAFT_SIM_SEEDS=$(SEEDS) $(CARGO) test --release --test raft_sim random_runs -- --nocapture

build:
	$(CARGO) build --release

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
