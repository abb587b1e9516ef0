#!/usr/bin/env bash
# Run the fuzz targets for a bounded time each (FUZZ_SECONDS, default 60): `request` (headers,
# query and body through every validator and the JSON check) and `config` (webhooks.json /
# connections.json parsing). Any panic fails the script and leaves the input in
# fuzz/artifacts/<target>/.
#
#   bash fuzz/run.sh                 # both targets, 60 s each
#   FUZZ_SECONDS=600 bash fuzz/run.sh request
#
# cargo-fuzz needs nightly-only rustc flags; the pinned stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1 (the only toolchain this machine has). cargo-fuzz is installed once into
# /opt/webhook-ci.
set -euo pipefail
cd "$(dirname "$0")"
root=${WEBHOOK_CI_TOOLS:-/opt/webhook-ci}
if ! [ -x "$root/bin/cargo-fuzz" ]; then
  cargo install --locked --root "$root" cargo-fuzz@0.13.2
fi
export PATH="$root/bin:$PATH" RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request config spool)
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "fuzzing $target for ${seconds}s" >&2
  cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 | tail -n 25
done
