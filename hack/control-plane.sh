#!/usr/bin/env bash
# Builds and runs a local Kubernetes control plane (etcd + kube-apiserver) for tests and demos.
#
#   hack/control-plane.sh build                  build the binaries, or find them in the cache
#   hack/control-plane.sh start DIR              start etcd and kube-apiserver with all state in DIR
#   hack/control-plane.sh stop DIR               stop both processes and delete their data
#   hack/control-plane.sh restart-apiserver DIR  restart kube-apiserver alone, etcd keeps its data
#
# Both binaries are built from Go modules by hack/control-plane/ (see its go.mod) and cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/caller-reputation-operator/control-plane/<kubernetes-version>/.
# There is no controller-manager, scheduler or kubelet: namespaces never finish terminating,
# garbage collection never runs and no pod is ever scheduled.
#
# `start` prints `export KUBECONFIG=DIR/kubeconfig` on stdout and its progress on stderr, so
# `eval "$(hack/control-plane.sh start DIR)"` points kubectl at the new control plane.
#
# Environment:
#   CONTROL_PLANE_START_TIMEOUT  seconds to wait for etcd and for /readyz (default 60)
#   CONTROL_PLANE_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL on stop (default 10)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_dir="$script_dir/control-plane"

start_timeout=${CONTROL_PLANE_START_TIMEOUT:-60}
stop_timeout=${CONTROL_PLANE_STOP_TIMEOUT:-10}

# The service network only shapes Service objects: nothing routes it without kube-proxy.
service_cluster_ip_range=10.96.0.0/16
service_cluster_ip=10.96.0.1

log() {
	echo "control-plane: $*" >&2
}

die() {
	log "error: $*"
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: hack/control-plane.sh build
       hack/control-plane.sh start DIR
       hack/control-plane.sh stop DIR
       hack/control-plane.sh restart-apiserver DIR
EOF
	exit 2
}

# --- build -----------------------------------------------------------------------------------

kubernetes_version() {
	awk '$1 == "k8s.io/kubernetes" { print $2; exit } $1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' \
		"$module_dir/go.mod"
}

cache_dir() {
	echo "${XDG_CACHE_HOME:-$HOME/.cache}/caller-reputation-operator/control-plane/$(kubernetes_version)"
}

# Flags of `go build` besides -ldflags; -trimpath keeps local paths out of the binaries.
go_build_flags=(-trimpath)

# Identifies one build: a change to the module, the etcd main or the flags rebuilds the binaries.
# The release time stands in as a placeholder because reading it needs the module proxy.
build_key() {
	{
		cat "$module_dir/go.mod" "$module_dir/go.sum" "$module_dir/cmd/etcd/main.go"
		echo "CGO_ENABLED=0 ${go_build_flags[*]}"
		version_ldflags "$(kubernetes_version)" release-time
	} | sha256sum | cut -d' ' -f1
}

cached_binaries_are_current() {
	local dir=$1
	[[ -x $dir/bin/etcd && -x $dir/bin/kube-apiserver && -f $dir/build-key ]] &&
		[[ $(<"$dir/build-key") == "$(build_key)" ]]
}

# Linker flags that make /version report the release instead of v0.0.0-master. The build date is
# the release's publication time from the module proxy, so that rebuilds produce the same binary.
version_ldflags() {
	local version=$1 release_time=$2
	local minor=${version#v1.}
	minor=${minor%%.*}
	local package flags="-s -w"
	for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $package.gitVersion=$version"
		flags+=" -X $package.gitMajor=1"
		flags+=" -X $package.gitMinor=$minor"
		flags+=" -X $package.gitTreeState=clean"
		flags+=" -X $package.buildDate=$release_time"
		# The module zip carries no commit hash, so report none instead of a placeholder.
		flags+=" -X $package.gitCommit="
	done
	echo "$flags"
}

build() {
	local dir
	dir=$(cache_dir)
	if cached_binaries_are_current "$dir"; then
		log "using cached binaries in $dir/bin"
		return
	fi

	command -v go >/dev/null || die "go is not installed; the control plane is built from Go modules"
	mkdir -p "$dir"
	# Parallel test binaries or engineers may build at once: one builds, the others wait for it.
	exec {lock_fd}>"$dir/build.lock"
	flock "$lock_fd"
	if cached_binaries_are_current "$dir"; then
		log "using cached binaries in $dir/bin"
		exec {lock_fd}>&-
		return
	fi

	local version release_time
	version=$(kubernetes_version)
	local release_info
	release_info=$(cd "$module_dir" && go mod download -json "k8s.io/kubernetes@$version") ||
		die "downloading k8s.io/kubernetes@$version failed: $(jq -r '.Error // empty' <<<"$release_info")"
	release_time=$(jq -r '.Time' "$(jq -r '.Info' <<<"$release_info")")
	[[ $release_time =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]] ||
		die "the module proxy reported no release time for k8s.io/kubernetes@$version"

	log "building kube-apiserver $version and etcd into $dir/bin (the first build takes a long time)"
	local started=$SECONDS staging="$dir/bin.new"
	rm -rf "$staging"
	mkdir -p "$staging"
	(
		cd "$module_dir"
		CGO_ENABLED=0 go build "${go_build_flags[@]}" -ldflags "$(version_ldflags "$version" "$release_time")" \
			-o "$staging/" k8s.io/kubernetes/cmd/kube-apiserver ./cmd/etcd
	) || die "go build failed; see the output above"

	rm -rf "${dir:?}/bin"
	mv "$staging" "$dir/bin"
	build_key >"$dir/build-key"
	exec {lock_fd}>&-
	log "built in $((SECONDS - started))s: $("$dir/bin/kube-apiserver" --version), etcd $("$dir/bin/etcd" --version | awk '/etcd Version/ { print $3 }')"
}

# --- process handling ------------------------------------------------------------------------

# Prints the PID stored in DIR/NAME.pid if that process still runs the binary of NAME for DIR.
# Checking the command line guards against a recycled PID belonging to someone else.
running_pid() {
	local dir=$1 name=$2 pid
	[[ -f $dir/$name.pid ]] || return 1
	pid=$(<"$dir/$name.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	process_alive "$pid" || return 1
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"/$name "* && $cmdline == *"$dir/"* ]] || return 1
	echo "$pid"
}

# Tells whether PID runs. A zombie counts as gone: it has exited and only waits for init, the
# parent of every detached server, to reap it.
process_alive() {
	local pid=$1 stat
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	# The state follows the parenthesised command name, which may itself contain spaces.
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# Sends SIGTERM, waits up to the stop timeout, then sends SIGKILL and waits for the exit.
stop_process() {
	local dir=$1 name=$2 pid
	if pid=$(running_pid "$dir" "$name"); then
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + stop_timeout))
		while process_alive "$pid" && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if process_alive "$pid"; then
			log "$name (pid $pid) ignored SIGTERM for ${stop_timeout}s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			while process_alive "$pid"; do
				sleep 0.1
			done
		fi
	fi
	rm -f "$dir/$name.pid"
}

# First line that launch writes into a server's log before each start.
launch_marker="==== control-plane.sh launched this server at"

# Starts the binary NAME with the arguments stored in DIR/NAME.args, detached in its own session
# so that a Ctrl-C aimed at the caller does not leave half a control plane behind.
launch() {
	local dir=$1 name=$2
	local -a args
	mapfile -t args <"$dir/$name.args"
	local binary
	binary=$(cache_dir)/bin/$name
	echo "$launch_marker $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$dir/logs/$name.log"
	setsid "$binary" "${args[@]}" </dev/null >>"$dir/logs/$name.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/$name.pid"
	# Until the background shell has executed the binary, the PID shows this script's command
	# line, and running_pid would take the server for dead.
	local deadline=$((SECONDS + 5))
	while [[ $(readlink "/proc/$pid/exe" 2>/dev/null) != "$binary" ]] && process_alive "$pid"; do
		((SECONDS < deadline)) || die "$name (pid $pid) did not start within 5s"
		sleep 0.01
	done
}

tail_log() {
	local dir=$1 name=$2
	log "last lines of $dir/logs/$name.log:"
	tail -n 30 "$dir/logs/$name.log" >&2 || true
}

# Prints a port on 127.0.0.1 that no socket uses. Ports come from below the kernel's ephemeral
# range (32768-60999 by default), so outgoing connections do not take them. Another starter may
# still take the port first: start_etcd and start_apiserver detect that bind failure and retry.
free_port() {
	local port
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 12000))
		if [[ -z $(ss -Htan "sport = :$port") ]]; then
			echo "$port"
			return
		fi
	done
	die "found no free port on 127.0.0.1 after 100 tries"
}

# Tells whether the last launch of NAME failed because its port was taken. Logs are appended
# across restarts, so only the lines after the last launch marker count.
address_in_use() {
	local dir=$1 name=$2
	awk -v marker="$launch_marker" '
		index($0, marker) == 1 { in_use = 0 }
		tolower($0) ~ /address already in use/ { in_use = 1 }
		END { exit !in_use }
	' "$dir/logs/$name.log"
}

# --- certificates and kubeconfig -------------------------------------------------------------

# Writes a CA, the apiserver's serving certificate, an admin client certificate in the group
# system:masters and the service-account signing key into DIR/pki.
generate_pki() {
	local pki=$1/pki
	command -v openssl >/dev/null || die "openssl is not installed (Debian: apt-get install -y openssl)"
	mkdir -p "$pki"
	(
		cd "$pki"
		local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
		openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 3650 \
			-subj "/CN=caller-reputation-operator local CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

		openssl req "${ec[@]}" -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-out apiserver.crt -extfile <(
				echo "basicConstraints=critical,CA:FALSE"
				echo "keyUsage=critical,digitalSignature"
				echo "extendedKeyUsage=serverAuth"
				echo "subjectAltName=IP:127.0.0.1,IP:$service_cluster_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
			) 2>/dev/null

		openssl req "${ec[@]}" -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=local-admin" 2>/dev/null
		openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-out admin.crt -extfile <(
				echo "basicConstraints=critical,CA:FALSE"
				echo "keyUsage=critical,digitalSignature"
				echo "extendedKeyUsage=clientAuth"
			) 2>/dev/null

		openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out service-account.key 2>/dev/null
		openssl pkey -in service-account.key -pubout -out service-account.pub 2>/dev/null
		rm -f ./*.csr ca.srl
	) || die "generating certificates with openssl failed"
}

write_kubeconfig() {
	local dir=$1 port=$2
	local pki=$dir/pki
	cat >"$dir/kubeconfig.new" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: local-admin
  user:
    client-certificate-data: $(base64 -w0 "$pki/admin.crt")
    client-key-data: $(base64 -w0 "$pki/admin.key")
contexts:
- name: local
  context:
    cluster: local
    user: local-admin
current-context: local
EOF
	mv "$dir/kubeconfig.new" "$dir/kubeconfig"
}

# --- etcd and kube-apiserver -----------------------------------------------------------------

write_etcd_args() {
	local dir=$1 client_port=$2 peer_port=$3
	# Test data is deleted on stop, so fsync would only slow every write down.
	cat >"$dir/etcd.args" <<EOF
--name=local
--data-dir=$dir/etcd
--listen-client-urls=http://127.0.0.1:$client_port
--advertise-client-urls=http://127.0.0.1:$client_port
--listen-peer-urls=http://127.0.0.1:$peer_port
--initial-advertise-peer-urls=http://127.0.0.1:$peer_port
--initial-cluster=local=http://127.0.0.1:$peer_port
--log-level=warn
--unsafe-no-fsync
EOF
}

write_apiserver_args() {
	local dir=$1 etcd_port=$2 port=$3
	local pki=$dir/pki
	# ServiceAccount admission rejects pods whose service account does not exist yet. The
	# controller-manager would create the "default" account in every namespace; here none runs.
	# The endpoint reconciler rejects a loopback advertise address, and without pods nothing
	# uses the endpoints of the "kubernetes" Service it would maintain.
	# Without priority and fairness, start took 4-5.5s instead of 6.2-6.8s (three runs each on
	# 2 shared cores under load), and nothing here tests request fairness.
	# With the default watch termination grace period of 0, the apiserver did not exit within
	# 10s of SIGTERM while a client kept a watch open, so stop and restart-apiserver ended it
	# with SIGKILL. With 2s it closes the watches and exits, and a restart took 3.8s, not 12s.
	cat >"$dir/kube-apiserver.args" <<EOF
--etcd-servers=http://127.0.0.1:$etcd_port
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--secure-port=$port
--tls-cert-file=$pki/apiserver.crt
--tls-private-key-file=$pki/apiserver.key
--client-ca-file=$pki/ca.crt
--service-account-key-file=$pki/service-account.pub
--service-account-signing-key-file=$pki/service-account.key
--service-account-issuer=https://kubernetes.default.svc
--service-cluster-ip-range=$service_cluster_ip_range
--authorization-mode=RBAC
--disable-admission-plugins=ServiceAccount
--endpoint-reconciler-type=none
--enable-priority-and-fairness=false
--shutdown-watch-termination-grace-period=2s
--profiling=false
--v=0
EOF
}

start_etcd() {
	local dir=$1 client_port=$2
	launch "$dir" etcd
	local deadline=$((SECONDS + start_timeout))
	until curl -fsS --max-time 2 "http://127.0.0.1:$client_port/health" 2>/dev/null | grep -q '"health":"true"'; do
		if ! running_pid "$dir" etcd >/dev/null; then
			address_in_use "$dir" etcd && return 3
			tail_log "$dir" etcd
			die "etcd exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			tail_log "$dir" etcd
			die "etcd was not healthy after ${start_timeout}s"
		fi
		sleep 0.1
	done
}

start_apiserver() {
	local dir=$1 port=$2
	launch "$dir" kube-apiserver
	local pki=$dir/pki
	local deadline=$((SECONDS + start_timeout))
	until curl -fsS --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		"https://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
		if ! running_pid "$dir" kube-apiserver >/dev/null; then
			address_in_use "$dir" kube-apiserver && return 3
			tail_log "$dir" kube-apiserver
			die "kube-apiserver exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			tail_log "$dir" kube-apiserver
			die "kube-apiserver did not answer /readyz within ${start_timeout}s"
		fi
		sleep 0.2
	done
}

# Port of the running apiserver, read back from its argument file.
apiserver_port() {
	sed -n 's/^--secure-port=//p' "$1/kube-apiserver.args"
}

start() {
	local dir=$1
	if running_pid "$dir" etcd >/dev/null || running_pid "$dir" kube-apiserver >/dev/null; then
		die "a control plane already runs in $dir; run 'hack/control-plane.sh stop $dir' first"
	fi
	build
	command -v curl >/dev/null || die "curl is not installed (Debian: apt-get install -y curl)"

	local started=$SECONDS
	rm -rf "$dir/etcd" "$dir/pki" "$dir/logs"
	mkdir -p "$dir/logs"
	# Whatever fails below, leave no half-started process behind.
	# shellcheck disable=SC2064 # expand $dir now: the trap may run after start() returned
	trap "stop $(printf '%q' "$dir") >/dev/null 2>&1" EXIT
	generate_pki "$dir"

	local attempt etcd_port apiserver_port status
	for attempt in 1 2 3 4 5; do
		etcd_port=$(free_port)
		write_etcd_args "$dir" "$etcd_port" "$(free_port)"
		status=0
		start_etcd "$dir" "$etcd_port" || status=$?
		((status == 0)) && break
		log "etcd port was taken by another process (attempt $attempt), retrying"
		stop_process "$dir" etcd
		rm -rf "$dir/etcd"
	done
	((status == 0)) || die "etcd found no free port after 5 attempts"
	log "etcd is healthy on 127.0.0.1:$etcd_port"

	for attempt in 1 2 3 4 5; do
		apiserver_port=$(free_port)
		write_apiserver_args "$dir" "$etcd_port" "$apiserver_port"
		status=0
		start_apiserver "$dir" "$apiserver_port" || status=$?
		((status == 0)) && break
		log "kube-apiserver port was taken by another process (attempt $attempt), retrying"
		stop_process "$dir" kube-apiserver
	done
	((status == 0)) || die "kube-apiserver found no free port after 5 attempts"

	write_kubeconfig "$dir" "$apiserver_port"
	trap - EXIT
	log "kube-apiserver is ready on https://127.0.0.1:$apiserver_port after $((SECONDS - started))s"
	echo "export KUBECONFIG=$dir/kubeconfig"
}

stop() {
	local dir=$1
	# The apiserver goes first so it does not log a storm of etcd connection errors.
	stop_process "$dir" kube-apiserver
	stop_process "$dir" etcd
	rm -rf "$dir/etcd" "$dir/pki" "$dir/kubeconfig" "$dir/etcd.args" "$dir/kube-apiserver.args"
}

restart_apiserver() {
	local dir=$1
	[[ -f $dir/kube-apiserver.args ]] || die "no control plane was started in $dir"
	running_pid "$dir" etcd >/dev/null || die "etcd does not run in $dir; start the control plane again"
	stop_process "$dir" kube-apiserver
	local port status=0
	port=$(apiserver_port "$dir")
	start_apiserver "$dir" "$port" || status=$?
	((status == 0)) || die "port $port of kube-apiserver was taken by another process while it restarted"
	log "kube-apiserver restarted on https://127.0.0.1:$port"
}

# Makes DIR absolute: the servers' arguments and the kubeconfig must not depend on the caller's
# working directory.
absolute_dir() {
	[[ -n ${1:-} ]] || usage
	mkdir -p "$1"
	(cd "$1" && pwd -P)
}

main() {
	[[ $# -ge 1 ]] || usage
	local command=$1
	shift
	case $command in
	build)
		[[ $# -eq 0 ]] || usage
		build
		;;
	start)
		[[ $# -eq 1 ]] || usage
		start "$(absolute_dir "$1")"
		;;
	stop)
		[[ $# -eq 1 ]] || usage
		[[ -d $1 ]] || exit 0
		stop "$(absolute_dir "$1")"
		;;
	restart-apiserver)
		[[ $# -eq 1 ]] || usage
		restart_apiserver "$(absolute_dir "$1")"
		;;
	*)
		usage
		;;
	esac
}

main "$@"
