#!/usr/bin/env bash
# tests/run.sh - runs every test suite and prints one closing line
# "N passed, N failed, N skipped" summed over all suites. Each suite prints
# its own "... N passed, N failed[, N skipped]" line; a suite that crashes or
# prints no such line counts as one failure.
#   KBRIDGE_BIN  binary under test (default ./kbridge)
#   SUITES       space-separated subset: unit e2e (default: all)
set -u
cd "$(dirname "$0")/.."
export KBRIDGE_BIN=${KBRIDGE_BIN:-./kbridge}
BUILD=${BUILD:-build}
SUITES=${SUITES:-unit e2e}
PY=/usr/bin/python3
pass=0 fail=0 skip=0

tally() { # $1 = suite name, stdin = its output
	local line p f s
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$1: no summary line (crashed?): counted as 1 failed"
		fail=$((fail + 1)); return
	fi
	p=$(sed -E 's/.*[^0-9]?([0-9]+) passed.*/\1/' <<<"$line")
	f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	s=0; grep -qE '[0-9]+ skipped' <<<"$line" && s=$(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$line")
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

for suite in $SUITES; do
	case $suite in
	unit)
		for t in "$BUILD"/test_*; do
			[ -x "$t" ] || continue
			out=$("$t" 2>&1); rc=$?
			printf '%s\n' "$out" | grep -E '^FAIL|passed, [0-9]+ failed|ERROR|runtime error'
			[ $rc -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' <<<"$out" && out="$out"$'\n'"0 passed, 1 failed"
			tally "$(basename "$t")" <<<"$out"
		done ;;
	e2e)
		mkdir -p tests/artifacts
		out=$(timeout 1800 $PY -m pytest -q -p no:cacheprovider tests/e2e ${PYTEST_ARGS:-} 2>&1); rc=$?
		printf '%s\n' "$out" | tail -n 60
		tally e2e <<<"$out" ;;
	*)
		echo "unknown suite $suite"; fail=$((fail + 1)) ;;
	esac
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
