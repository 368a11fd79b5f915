#!/usr/bin/env bash
# Runs the operator end to end on this machine, without a Plivo account:
#
#   hack/demo.sh start   local control plane (or the current cluster with
#                        USE_EXISTING_CLUSTER=1), the CRDs, the Plivo sandbox,
#                        the operator, and examples/ applied; then watches the
#                        numbers go from PENDING to ACTIVE
#   hack/demo.sh stop    stops everything start left running
#
# Everything the demo writes (kubeconfig, logs, sandbox state) is in DEMO_DIR,
# by default .demo/ at the top of the repository.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo_dir=${DEMO_DIR:-$repo/.demo}
namespace=${DEMO_NAMESPACE:-caller-reputation-demo}
activation_delay=${DEMO_ACTIVATION_DELAY:-15s}
binary=$repo/target/debug/caller-reputation-operator
# The account of examples/credentials-secret.yaml; the sandbox accepts its fake token.
auth_id=MAFAKEFAKEFAKEFAKE00
auth_token=fake-auth-token-replace-me
adopted_uuid=00000000-0000-4000-8000-000000000001

say() {
	printf '\n==> %s\n' "$*"
}

# Errors go to file descriptor 3, a copy of stderr, so that they show even
# from a check whose output wait_for discards. Background processes get it
# closed, or a pipe such as `make demo | tail` would wait for them to exit.
exec 3>&2

die() {
	echo "demo: error: $*" >&3
	for log in "$demo_dir/sandbox.log" "$demo_dir/operator.log"; do
		if [[ -s $log ]]; then
			echo "--- last lines of $log" >&3
			tail -n 5 "$log" >&3
		fi
	done
	echo "demo: run 'make demo-stop' to stop what was started" >&3
	exit 1
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Polls `command` every second until it succeeds or `seconds` pass.
wait_for() {
	local what=$1 seconds=$2
	shift 2
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what"
		sleep 1
	done
}

# Succeeds once the sandbox serves requests; fails the demo at once if it exited.
sandbox_answers() {
	kill -0 "$(<"$demo_dir/sandbox.pid")" 2>/dev/null || die "the sandbox exited"
	curl -fsS "http://127.0.0.1:$1/_sandbox/health"
}

start_background() {
	local name=$1
	shift
	"$@" >"$demo_dir/$name.log" 2>&1 3>&- &
	echo $! >"$demo_dir/$name.pid"
}

stop_background() {
	local pid_file=$demo_dir/$1.pid
	[[ -f $pid_file ]] || return 0
	local pid
	pid=$(<"$pid_file")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 15))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pid_file"
}

start() {
	mkdir -p "$demo_dir"
	[[ ! -f $demo_dir/operator.pid ]] || die "a demo is already running; run 'make demo-stop' first"

	say "Building the operator"
	cargo build --quiet --bin caller-reputation-operator --manifest-path "$repo/Cargo.toml"

	if [[ ${USE_EXISTING_CLUSTER:-} == 1 ]]; then
		say "Using the current cluster ($(kubectl config current-context))"
		kubeconfig=${KUBECONFIG:-$HOME/.kube/config}
	else
		say "Starting a local control plane (kube-apiserver and etcd)"
		"$repo/hack/control-plane.sh" start "$demo_dir/control-plane" >/dev/null 3>&-
		kubeconfig=$demo_dir/control-plane/kubeconfig
	fi
	echo "$kubeconfig" >"$demo_dir/kubeconfig-path"
	export KUBECONFIG=$kubeconfig

	say "Installing the CRDs"
	kubectl apply --server-side -f "$repo/crds/" >/dev/null
	kubectl wait --for=condition=Established --timeout=60s \
		crd/businessprofiles.callerreputation.io crd/callerreputationnumbers.callerreputation.io >/dev/null

	say "Starting the Plivo sandbox (activation delay $activation_delay)"
	local sandbox_port operator_port
	sandbox_port=$(free_port)
	operator_port=$(free_port)
	start_background sandbox "$binary" sandbox \
		--listen "127.0.0.1:$sandbox_port" \
		--account "$auth_id:$auth_token" \
		--numbers-file "$repo/hack/demo/numbers.yaml" \
		--activation-delay "$activation_delay" \
		--state-file "$demo_dir/sandbox-state.json"
	wait_for "the sandbox" 30 sandbox_answers "$sandbox_port"
	# The adoption example names a profile that exists at Plivo already; make it exist.
	curl -fsS -o /dev/null -X POST "http://127.0.0.1:$sandbox_port/_sandbox/profiles" \
		-H 'content-type: application/json' \
		-d "{\"account\":\"$auth_id\",\"profile_uuid\":\"$adopted_uuid\",\"fields\":{\"profile_alias\":\"globex-10dlc\",\"customer_type\":\"DIRECT\",\"entity_type\":\"PRIVATE\",\"company_name\":\"Globex\",\"vertical\":\"TECHNOLOGY\",\"ein\":\"987654321\",\"website\":\"https://globex.example.com\",\"address\":{\"street\":\"1 Globex Way\",\"city\":\"Austin\",\"state\":\"TX\",\"postal_code\":\"78701\",\"country\":\"US\"},\"authorized_contact\":{\"first_name\":\"Hank\",\"last_name\":\"Scorpio\",\"email\":\"hank@globex.example.com\",\"title\":\"CEO\",\"seniority\":\"CEO\",\"phone\":\"+15125550199\"}}}" ||
		true

	say "Starting the operator"
	start_background operator "$binary" run \
		--kubeconfig "$kubeconfig" \
		--namespaces "$namespace" \
		--plivo-base-url "http://127.0.0.1:$sandbox_port" \
		--listen "127.0.0.1:$operator_port" \
		--callback-base-url "http://127.0.0.1:$operator_port" \
		--pending-recheck-min 5s \
		--pending-recheck-max 30s \
		--log-format text
	wait_for "the operator to be ready" 60 curl -fsS "http://127.0.0.1:$operator_port/readyz"
	echo "$sandbox_port $operator_port" >"$demo_dir/ports"

	say "Applying examples/ to namespace $namespace"
	kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kubectl apply --server-side -n "$namespace" -f "$repo/examples/credentials-secret.yaml" \
		-f "$repo/examples/businessprofile.yaml" -f "$repo/examples/businessprofile-adopted.yaml" \
		-f "$repo/examples/number.yaml" -f "$repo/examples/number-with-callback.yaml" \
		-f "$repo/examples/number-disabled.yaml"

	say "Waiting for the carriers (the sandbox decides after $activation_delay)"
	local deadline=$((SECONDS + 180)) shown=""
	while ((SECONDS < deadline)); do
		local table
		table=$(kubectl get callerreputation -n "$namespace" 2>/dev/null || true)
		# Reprint only when something but the AGE column changed.
		if [[ $(awk '{$NF=""; print}' <<<"$table") != $(awk '{$NF=""; print}' <<<"$shown") ]]; then
			printf '\n%s\n' "$table"
			shown=$table
		fi
		local active
		active=$(kubectl get crn -n "$namespace" -o jsonpath='{range .items[*]}{.status.callerReputationStatus}{"\n"}{end}' | grep -c '^ACTIVE$' || true)
		if ((active >= 2)); then
			break
		fi
		sleep 2
	done
	((SECONDS < deadline)) || die "numbers did not become ACTIVE; see $demo_dir/operator.log"

	cat <<EOT

The numbers are ACTIVE. Look around:
  export KUBECONFIG=$kubeconfig
  kubectl get callerreputation -n $namespace -o wide
  kubectl describe crn support-line -n $namespace
  kubectl get events -n $namespace
  curl -s http://127.0.0.1:$operator_port/metrics | grep ^caller_reputation_
  curl -s http://127.0.0.1:$sandbox_port/_sandbox/state
Logs: $demo_dir/operator.log and $demo_dir/sandbox.log
Stop everything with: make demo-stop
EOT
}

stop() {
	stop_background operator
	stop_background sandbox
	if [[ -d $demo_dir/control-plane ]]; then
		"$repo/hack/control-plane.sh" stop "$demo_dir/control-plane" >/dev/null 2>&1 || true
	fi
	rm -rf "$demo_dir"
	echo "demo: stopped"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*)
	echo "usage: hack/demo.sh start|stop" >&2
	exit 2
	;;
esac
