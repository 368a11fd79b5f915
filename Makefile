# Developer entry points; see the Development section of README.md.

.PHONY: test
test:
	hack/control-plane.sh build
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo test
