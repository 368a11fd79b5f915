# Developer entry points; see the Development section of README.md.

.PHONY: test
test:
	hack/control-plane.sh build
	hack/install-tools.sh >/dev/null
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo test

.PHONY: demo demo-stop
demo:
	hack/demo.sh start

demo-stop:
	hack/demo.sh stop
