#!/usr/bin/env bash
# The whole test suite: what `make test` and `make check` run.
#
#   tests/run.sh BUILD_DIR [unit|system|all] [-k PATTERN ...]
#
# Starts one throwaway PostgreSQL cluster (deleted afterwards, also on
# failure or Ctrl-C) and exports its conninfo as BEACON_TEST_DATABASE_URL,
# runs every cmocka binary BUILD_DIR/tests/test_*, then (unless `unit`) the
# black-box system tests in tests/system (the real processes over HTTPS; -k
# selects some of them). Every test's name and result is printed; the last
# line is the summary "N passed, N failed[, N skipped]". Exits non-zero when
# anything failed or when no test ran at all.
set -uo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
build=${1:?usage: tests/run.sh BUILD_DIR [unit|system|all] [-k PATTERN ...]}
build=$(realpath -m "$build")
mode=${2:-all}
[ $# -ge 2 ] && shift 2 || shift $#
case "$mode" in unit|system|all) ;; *) echo "tests/run.sh: unknown mode '$mode'" >&2; exit 2 ;; esac

passed=0
failed=0
skipped=0
failures=()

tmp=$(mktemp -d "${TMPDIR:-/tmp}/beacon-test.XXXXXX")
# The postgres user must be able to reach the cluster directory inside.
chmod 0711 "$tmp"
cluster="$tmp/pg"

cleanup() {
  if [ -n "${tmp:-}" ] && [ -d "$tmp" ]; then
    bash "$repo/deploy/pg-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'echo "tests/run.sh: interrupted" >&2; exit 130' INT TERM

summary() {
  if [ ${#failures[@]} -gt 0 ]; then
    echo
    echo "Failed:"
    printf '  %s\n' "${failures[@]}"
  fi
  local line="$passed passed, $failed failed"
  [ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
  echo
  echo "$line"
}

finish() {
  cleanup
  summary
  if [ "$failed" -gt 0 ] || [ $((passed + failed)) -eq 0 ]; then
    exit 1
  fi
  exit 0
}

banner() { printf '\n==== %s ====\n' "$*"; }

# ---- PostgreSQL -------------------------------------------------------------
banner "throwaway PostgreSQL cluster"
port=$(bash deploy/pg-cluster.sh free-port)
if ! url=$(bash deploy/pg-cluster.sh init "$cluster" "$port" --throwaway); then
  echo "FAIL: could not start a PostgreSQL cluster (see above; $cluster/postgres.log)"
  [ -f "$cluster/postgres.log" ] && tail -n 20 "$cluster/postgres.log"
  failed=$((failed + 1))
  failures+=("PostgreSQL cluster did not start")
  finish
fi
# Known leaks in third-party libraries (if any) are listed, with a reason
# each, in tests/lsan.supp; only used by sanitizer builds.
if [ -f "$repo/tests/lsan.supp" ]; then
  export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$repo/tests/lsan.supp:print_suppressions=0"
fi
export BEACON_TEST_DATABASE_URL="$url"
export BEACON_TEST_BUILD_DIR="$build"
echo "BEACON_TEST_DATABASE_URL=$url"

# ---- unit tests (cmocka) ----------------------------------------------------
run_unit() {
  local bin out rc run ok skip bad n=0
  shopt -s nullglob
  for bin in "$build"/tests/test_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    n=$((n + 1))
    banner "unit: $(basename "$bin")"
    out="$tmp/unit-$(basename "$bin").out"
    # cmocka writes results to stdout and messages to stderr: show both.
    timeout --kill-after=10 300 "$bin" >"$out" 2>&1
    rc=$?
    cat "$out"
    run=$(sed -n 's/^\[==========\] \([0-9][0-9]*\) test(s) run\..*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    ok=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    skip=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test(s), listed below.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    bad=$((run - ok - skip))
    [ "$bad" -lt 0 ] && bad=0
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
      # Crashed, timed out or sanitizer report after the summary.
      bad=1
      echo "FAIL: $(basename "$bin") exited with status $rc"
    fi
    if [ "$run" -eq 0 ] && [ "$rc" -eq 0 ]; then
      ok=1   # no cmocka summary but a clean exit: one passing program
    fi
    passed=$((passed + ok))
    failed=$((failed + bad))
    skipped=$((skipped + skip))
    [ "$bad" -gt 0 ] && failures+=("unit: $(basename "$bin") ($bad failed, exit $rc)")
    echo "-- $(basename "$bin"): $ok passed, $bad failed, $skip skipped (exit $rc)"
  done
  shopt -u nullglob
  if [ "$n" -eq 0 ]; then
    echo "no unit test binaries in $build/tests (run make)"
  fi
}

# ---- system tests (Python, real processes) ------------------------------------
run_system() {
  banner "system tests (tests/system, build $build)"
  local counts="$tmp/system.counts"
  python3 tests/system/run_all.py --counts "$counts" "$@"
  local rc=$?
  if [ -s "$counts" ]; then
    read -r p f s <"$counts"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    [ "$f" -gt 0 ] && failures+=("system: $f failed (see above)")
  else
    failed=$((failed + 1))
    failures+=("system: the test runner itself failed (exit $rc)")
  fi
}

if [ "$mode" != system ]; then
  run_unit
fi
if [ "$mode" != unit ]; then
  run_system "$@"
fi
finish
