#!/usr/bin/env bash
# tests/run.sh - runs every test suite and prints one closing line
# "N passed, N failed, N skipped" summed over all suites. Each suite prints
# its own "... N passed, N failed[, N skipped]" line; a suite that crashes or
# prints no such line counts as one failure.
#   SUITES        space-separated subset (default: all of them):
#                 unit e2e e2e-workers e2e-deflate asan-unit asan-e2e fuzz static static-aarch64
#                 (e2e-workers: the e2e suite again, each kbridge with
#                 --workers 2 unless a test chose --workers, --group or --demo;
#                 e2e-deflate: again, every raw client offering permessage-deflate)
#   FUZZ_SECONDS  per fuzz target (default 15)
set -u
cd "$(dirname "$0")/.."
SUITES=${SUITES:-unit e2e e2e-workers e2e-deflate asan-unit asan-e2e fuzz static static-aarch64}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
PY=/usr/bin/python3
pass=0 fail=0 skip=0

tally() { # $1 = suite name, stdin = its output
	local line p f s
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$1: no summary line (crashed?): counted as 1 failed"
		fail=$((fail + 1)); return
	fi
	p=$(sed -E 's/(^|.*[^0-9])([0-9]+) passed.*/\2/' <<<"$line")
	f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	s=0; grep -qE '[0-9]+ skipped' <<<"$line" && s=$(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$line")
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

run_unit() { # $1 = build dir
	for t in "$1"/test_*; do
		[ -x "$t" ] || continue
		out=$("$t" 2>&1); rc=$?
		printf '%s\n' "$out" | grep -E '^FAIL|passed, [0-9]+ failed|ERROR|runtime error'
		[ $rc -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' <<<"$out" && out="$out"$'\n'"0 passed, 1 failed"
		tally "$t" <<<"$out"
	done
}

run_e2e() { # $1 = binary
	mkdir -p tests/artifacts
	out=$(KBRIDGE_BIN=$1 timeout 2400 $PY -m pytest -q -p no:cacheprovider tests/e2e ${PYTEST_ARGS:-} 2>&1)
	printf '%s\n' "$out" | grep -vE '^\.+ *(\[ *[0-9]+%\])?$' | tail -n 80
	tally "e2e ($1)" <<<"$out"
}

for suite in $SUITES; do
	echo "== $suite"
	case $suite in
	unit)      run_unit build ;;
	e2e)       run_e2e ./kbridge ;;
	e2e-workers) KBRIDGE_TEST_WORKERS=2 run_e2e ./kbridge ;;
	e2e-deflate) KBRIDGE_TEST_DEFLATE=1 run_e2e ./kbridge ;;
	asan-unit) run_unit build/asan ;;
	asan-e2e)  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} run_e2e ./kbridge-asan ;;
	fuzz)
		# Each target runs FUZZ_SECONDS from its seeds; a crash fails it.
		for f in build/fuzz/fuzz_*; do
			[ -x "$f" ] || continue
			name=$(basename "$f")
			corpus=build/fuzz/corpus-$name
			mkdir -p "$corpus"
			seeds=fuzz/seeds/${name#fuzz_}
			[ -d "$seeds" ] || seeds=
			dict=fuzz/${name#fuzz_}.dict
			[ -f "$dict" ] && dict="-dict=$dict" || dict=
			if "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 $dict \
				-artifact_prefix=build/fuzz/ "$corpus" $seeds >build/fuzz/$name.log 2>&1; then
				echo "$name: $(grep -E '^Done' build/fuzz/$name.log)"; pass=$((pass + 1))
			else
				echo "$name: FAILED (see build/fuzz/$name.log)"; tail -n 30 build/fuzz/$name.log
				fail=$((fail + 1))
			fi
		done ;;
	static | static-aarch64)
		# static-aarch64: the arm64 binary under qemu-user-static (one skip
		# line when the cross toolchain is absent).
		arch=x86_64; [ "$suite" = static-aarch64 ] && arch=aarch64
		out=$(STATIC_ARCH=$arch tests/static/run.sh 2>&1); printf '%s\n' "$out" | tail -n 60
		tally "$suite" <<<"$out" ;;
	*)
		echo "unknown suite $suite"; fail=$((fail + 1)) ;;
	esac
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
