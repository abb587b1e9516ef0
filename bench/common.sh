# Shared set-up of the benchmark scripts (sourced): wrk, the release build, a scratch
# directory and the processes to stop on exit (append their pids to `pids`).
if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p webhook-server -p bare-hyper

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
