# kbridge - plain Makefile.
#   make            ./kbridge for development and tests (librdkafka linked statically)
#   make demo       install what is missing, build, run ./kbridge --demo
#   make test       install what is missing, build, run every suite; last line
#                   "N passed, N failed, N skipped"
#   make asan       ./kbridge-asan and unit tests under ASan/UBSan (build/asan/)
#   make fuzz       libFuzzer targets, each run FUZZ_SECONDS (default 60)
#   make bench      every benchmark scenario: table + build/bench/results.json (~4 min)
#   make static     fully static musl binary ./kbridge-static (deps/deps.mk)
#   make static ARCH=aarch64  the same for arm64: ./kbridge-static-aarch64
#   make test-static  both static binaries in an empty chroot, TLS (tests/static/;
#                   the arm64 one under qemu-user-static)
#   make clean
# Objects and test programs go to build/ (never committed); third-party
# libraries to a cache outside the tree (deps/).

CC      ?= cc
CLANG   ?= clang
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= $(OPT)
KB_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP $(CFLAGS) $(EXTRA_CFLAGS)

# Everything but main() lives in LIB_SRCS so unit tests link the same code.
LIB_SRCS := $(filter-out kbridge.c,$(wildcard *.c))
MAIN_SRC := kbridge.c

include deps/deps.mk
include bench/bench.mk
KB_CFLAGS += $(RDKAFKA_CFLAGS)
LDLIBS    += $(RDKAFKA_LIBS)

# B and BIN are overridden by the asan build (make asan) below.
B        ?= build
BIN      ?= kbridge
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/%)

.PHONY: all demo test test-static setup unit tools asan fuzz fuzz-build clean
all: $(BIN)

# Objects depend on librdkafka's stamp (built into the cache on first use):
# -MMD does not list -isystem headers, so this is what rebuilds after a bump.
$(B)/%.o: %.c $(RDKAFKA_DEV_STAMP) | $(B)/.dir
	$(CC) $(KB_CFLAGS) -c -o $@ $<
$(B)/.dir:
	mkdir -p $(B) && touch $@

# assets.c pulls these in with .incbin, which -MMD does not see.
$(B)/assets.o $(STATIC_B)/assets.o: web/console.html web/docs.html LICENSE THIRD-PARTY-NOTICES

$(BIN): $(B)/kbridge.o $(LIB_OBJS) $(RDKAFKA_DEV_STAMP)
	$(CC) $(KB_CFLAGS) -o $@ $(B)/kbridge.o $(LIB_OBJS) $(LDLIBS)

# Unit tests link against an archive, so each pulls in only the modules it uses.
$(B)/libkb.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^
$(B)/test_%: tests/unit/test_%.c $(B)/libkb.a tests/unit/check.h
	$(CC) $(KB_CFLAGS) -I. -o $@ $< $(B)/libkb.a $(LDLIBS)

unit: $(UNIT_BINS)

# Test tools: the mock Kafka cluster the end-to-end tests talk to.
$(B)/mockkafka: tests/tools/mockkafka.c $(RDKAFKA_DEV_STAMP) | $(B)/.dir
	$(CC) $(KB_CFLAGS) -o $@ tests/tools/mockkafka.c $(LDLIBS)
tools: $(B)/mockkafka

# ---- sanitizers: the same code and tests under ASan + UBSan ---------------
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Built with clang, so every `make test` also proves the code clang-clean
# (the release build is gcc's).
asan:
	$(MAKE) B=build/asan BIN=kbridge-asan CC=$(CLANG) CFLAGS="$(ASAN_FLAGS)" kbridge-asan unit

# ---- fuzzing (libFuzzer via clang) ------------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_LIB  := http.c ws.c json.c json_parse.c utf8.c sha1.c base64.c msgpack.c statediff.c jwt.c jwks.c pmd.c sse.c
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

# -lcrypto: jwt.c and jwks.c, -lz: pmd.c; like the rest of FUZZ_LIB, they go
# into every target.
build/fuzz/%: fuzz/%.c $(FUZZ_LIB) $(wildcard *.h)
	@mkdir -p build/fuzz
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB) -lcrypto -lz
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	SUITES=fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run.sh

# ---- the two README commands ------------------------------------------------
# make test and make test-static also install what only the tests need
# (SETUP_TEST=1: strace, systemd-analyze, the arm64 cross toolchain).
setup:
	@SETUP_TEST=$(SETUP_TEST) sh tests/setup.sh
test test-static: SETUP_TEST = 1

demo: setup
	$(MAKE) all
	./kbridge --demo

# CI and the README run exactly this. FUZZ_SECONDS is short here: make fuzz
# is the long run.
test: setup
	$(MAKE) all unit tools bench-tools
	$(MAKE) asan
	$(MAKE) fuzz-build
	FUZZ_SECONDS=$${FUZZ_SECONDS:-15} tests/run.sh

test-static: setup
	SUITES="static static-aarch64" tests/run.sh

clean:
	rm -rf build kbridge kbridge-asan

-include $(wildcard $(B)/*.d)
