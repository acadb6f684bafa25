# The commands README gives. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

# Terraform CLIs (PATH, then .tools/) and moto, as installed by scripts/tools.sh.
TOOLS_ENV = eval "$$(bash scripts/tools.sh env)"

.PHONY: tools build lint test unit acceptance docs demo demo-haproxy install release bench

tools:
	@bash scripts/tools.sh install

build:
	cargo build --workspace --all-targets --locked

lint: tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo run -q --locked -p xtask -- docs --check
	@$(TOOLS_ENV); tf="$${TF_ACC_TERRAFORM_PATHS%%:*}"; \
	  echo "$$tf fmt -check -recursive examples/"; "$$tf" fmt -check -recursive examples/

# Unit tests, then the acceptance suite against every Terraform CLI found, the ALB emulator
# (moto behind it) and real HTTP apps on loopback.
test: tools lint build
	@$(TOOLS_ENV); TF_ACC=1 cargo nextest run --workspace --locked --no-fail-fast

unit: build
	cargo nextest run --workspace --locked

acceptance: tools build
	@$(TOOLS_ENV); TF_ACC=1 cargo nextest run -p acceptance-tests --locked --no-fail-fast

# docs/ from templates/, examples/ and the provider's schemas (xtask/); `lint` checks it.
docs:
	cargo run -q -p xtask -- docs

# A release, a failed release and a rollback on loopback (moto, test apps): < 30 s once built.
demo:
	@bash scripts/demo.sh

# The same four releases on a real HAProxy (Runtime API), under load, on loopback: < 20 s once built.
demo-haproxy:
	@bash scripts/demo-haproxy.sh

# The release build into ~/.terraform.d/plugins (PLUGIN_DIR=dir elsewhere, PROFILE=debug).
install:
	@bash scripts/install.sh

# dist/: the zip, _manifest.json and _SHA256SUMS for this platform (and _SHA256SUMS.sig with
# GPG_FINGERPRINT=KEY), and mirror/, a provider network mirror to serve over https.
release:
	@bash scripts/release.sh

# Benchmarks against the Go null provider and the scripted pipeline (release build, several
# runs, medians); regenerates docs/benchmarks.md.
bench:
	bash bench/run.sh
