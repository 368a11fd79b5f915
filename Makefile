# Developer entry points; see the Development section of README.md.

.PHONY: test
test:
	hack/control-plane.sh build
	hack/install-tools.sh >/dev/null
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo test
	# The controller scenarios again, with 30% of Plivo requests failing.
	CRO_E2E_FAULT_RATIO=0.3 cargo test --test controllers

.PHONY: demo demo-stop
demo:
	hack/demo.sh start

demo-stop:
	hack/demo.sh stop
