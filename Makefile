# The two commands a newcomer needs: `make demo` and `make test`.

CARGO ?= cargo

.PHONY: test demo bench sim build fmt lint

## Run every test: unit tests, the Raft simulator (1,000 seeds) and the integration tests.
test:
	$(CARGO) test

## The presentation of a cluster surviving failures (not built yet: it needs the node server
## and the lab; see the README).
demo:
	@echo "make demo: not available yet. It needs the node server and the lab, which are not built;" >&2
	@echo "today raftchat is its Raft core. 'make test' runs its proofs; 'make sim' runs 100,000 seeds." >&2
	@exit 2

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
