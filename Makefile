# The two commands a newcomer needs: `make demo` and `make test`.

CARGO ?= cargo

.PHONY: test demo bench sim build fmt lint

## Run every test: unit tests, the Raft simulator (1,000 seeds) and the integration tests.
test:
	$(CARGO) test

## Watch a cluster survive, as a presentation: five nodes, a leader killed mid-conversation,
## a lost majority, a power cut and a sixth node joining, with a live view of every node and
## every disk checked offline at the end. Pace it with `ARGS=--pace 2s`, or drive it with
## `ARGS=--step` (Enter before each step).
demo:
	$(CARGO) build --release
	./target/release/raftchat lab demo $(ARGS)

## The benchmark: writes and linearizable reads at 1, 16, 64 and 256 clients, failover,
## restart with 1,000,000 messages, a new node catching up with 100,000, and memory, on 3-
## and 5-node clusters it starts itself. Prints a table; writes target/bench/bench.json and
## target/bench/failover.svg. (`cargo bench` runs the core's and the storage's own.)
bench:
	$(CARGO) build --release
	./target/release/raftchat bench $(ARGS)

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
