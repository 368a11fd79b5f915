#!/usr/bin/env bash
# Installs the tools the chart and Argo CD tests need, or finds them already installed.
#
#   hack/install-tools.sh        install helm, kubeconform and lua5.1; print the tools directory
#
# helm and kubeconform are built from Go modules (pinned below) and cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/caller-reputation-operator/tools/<tool>/<version>/, with the
# current versions linked from tools/bin/, which is where tests/chart.rs looks first. A cached
# build costs nothing, so the script is cheap to run before every test run.
# lua5.1 (the Lua dialect of Argo CD's health checks) comes from the Debian package of that name
# and is installed with apt-get when the command is missing and apt-get is usable.
set -euo pipefail

helm_version=v3.22.0
kubeconform_version=v0.8.0

tools_dir="${XDG_CACHE_HOME:-$HOME/.cache}/caller-reputation-operator/tools"

log() {
	echo "install-tools: $*" >&2
}

die() {
	log "error: $*"
	exit 1
}

# go_tool NAME VERSION PACKAGE builds PACKAGE@VERSION once and links it as tools/bin/NAME.
go_tool() {
	local name=$1 version=$2 package=$3
	local dir="$tools_dir/$name/$version"
	if [[ ! -x $dir/$name ]]; then
		command -v go >/dev/null || die "go is required to build $name $version"
		log "building $name $version (first run only)"
		mkdir -p "$dir"
		# A build into a temporary directory, moved at the end, leaves no half-written binary
		# behind when it is interrupted.
		local staging
		staging=$(mktemp -d "$tools_dir/.build-$name-XXXXXX")
		CGO_ENABLED=0 GOBIN="$staging" go install "$package@$version"
		mv "$staging/$name" "$dir/$name"
		rmdir "$staging"
	fi
	mkdir -p "$tools_dir/bin"
	ln -sfn "$dir/$name" "$tools_dir/bin/$name"
}

# lua5.1 is optional: without it the Argo CD health check test is skipped with a message.
install_lua() {
	command -v lua5.1 >/dev/null && return
	local sudo_command=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null; then
			log "warning: lua5.1 is missing and installing it needs root; the health check test will be skipped"
			return
		fi
		sudo_command=(sudo)
	fi
	if ! command -v apt-get >/dev/null; then
		log "warning: lua5.1 is missing and there is no apt-get; the health check test will be skipped"
		return
	fi
	log "installing lua5.1 with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	"${sudo_command[@]}" apt-get update >&2
	"${sudo_command[@]}" apt-get install -y --no-install-recommends lua5.1 >&2
}

mkdir -p "$tools_dir"
go_tool helm "$helm_version" helm.sh/helm/v3/cmd/helm
go_tool kubeconform "$kubeconform_version" github.com/yannh/kubeconform/cmd/kubeconform
install_lua

echo "$tools_dir/bin"
