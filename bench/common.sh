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

# BEFORE=/path/to/an/older/webhook-server: every gateway row is measured with that binary
# too, in the same round (rows named `before_<row>`), and the summary prints after/before.
gateways=("|./target/release/webhook-server")
if [ -n "${BEFORE:-}" ]; then gateways+=("before_|$BEFORE"); fi
