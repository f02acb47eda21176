# bench/bench.mk - the benchmark tools and `make bench` (bench/README.md).
# Included from the top Makefile right after deps/deps.mk (which provides
# RDKAFKA_DEV_STAMP, used here as a prerequisite, and the librdkafka flags in
# KB_CFLAGS / LDLIBS). Also usable on its own, included or not (it guards
# against being read twice): make -f Makefile -f bench/bench.mk bench
#   make bench-tools   build/bench/wsload, build/bench/produce and build/bench/floor
#   make bench         build kbridge, mockkafka and the tools; run every
#                      scenario; table on stdout, build/bench/results.{json,md}
#                      (BENCH_ARGS passes options to bench/run.py)
ifndef BENCH_MK_INCLUDED
BENCH_MK_INCLUDED := 1
# Do not let this file's rules become the default goal.
_BENCH_GOAL := $(.DEFAULT_GOAL)

BENCH_B     := build/bench
BENCH_TOOLS := $(BENCH_B)/wsload $(BENCH_B)/produce $(BENCH_B)/floor

# wsload links only libssl/libcrypto (--tls: the system's, the same ones the
# dev build of kbridge links through RDKAFKA_LIBS); produce links librdkafka;
# floor (the reference sender, no Kafka) only libcrypto, for the upgrade's SHA-1.
$(BENCH_B)/wsload: bench/wsload.c bench/benchctl.h
	@mkdir -p $(@D)
	$(CC) $(KB_CFLAGS) -o $@ $< -lssl -lcrypto -lz
$(BENCH_B)/floor: bench/floor.c bench/benchclock.h bench/benchctl.h
	@mkdir -p $(@D)
	$(CC) $(KB_CFLAGS) -o $@ $< -lcrypto
$(BENCH_B)/produce: bench/produce.c bench/benchclock.h | $(RDKAFKA_DEV_STAMP)
	@mkdir -p $(@D)
	$(CC) $(KB_CFLAGS) -o $@ $< $(LDLIBS)

.PHONY: bench bench-tools
bench-tools: $(BENCH_TOOLS)

bench: all tools bench-tools
	/usr/bin/python3 bench/run.py $(BENCH_ARGS)

-include $(wildcard $(BENCH_B)/*.d)
.DEFAULT_GOAL := $(_BENCH_GOAL)
endif
