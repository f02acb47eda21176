# Third-party libraries for kbridge, built by deps/build.sh into a cache
# outside the work tree. Include from the top Makefile with:
#     include deps/deps.mk
# Versions and checksums live in deps/versions.mk only.
#
# Provides:
#   RDKAFKA_DEV_STAMP     file target: builds librdkafka.a (gcc, Debian libs)
#   RDKAFKA_CFLAGS        -isystem (rdkafka.h warns under -Wextra; -isystem
#                         keeps -Werror builds clean), for <librdkafka/rdkafka.h>
#                         and <librdkafka/rdkafka_mock.h>
#   RDKAFKA_LIBS          librdkafka.a plus the system libraries it needs
#   RDKAFKA_STATIC_STAMP  file target: zlib, zstd, OpenSSL, librdkafka (musl)
#   RDKAFKA_STATIC_CFLAGS / RDKAFKA_STATIC_LIBS / RDKAFKA_STATIC_LDFLAGS / MUSL_CC
#   STATIC_BIN, static (phony): the stripped, fully static musl binary for
#                         ARCH (x86_64 default: kbridge-static; aarch64:
#                         kbridge-static-aarch64)
#   deps, deps-static (phony): just build the libraries
# Uses from the top Makefile: MAIN_SRC, LIB_SRCS (include this file after
# they are set: rule targets are expanded as they are read) and KB_CFLAGS.

ifeq ($(origin LIB_SRCS),undefined)
$(error include deps/deps.mk after LIB_SRCS and MAIN_SRC are defined)
endif

# Do not let this file's rules become the default goal.
_DEPS_GOAL := $(.DEFAULT_GOAL)

DEPS_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
include $(DEPS_DIR)/versions.mk

KBRIDGE_CACHE ?= $(HOME)/.cache/kbridge
DEPS_BUILD = KBRIDGE_CACHE='$(KBRIDGE_CACHE)' sh $(DEPS_DIR)/build.sh

# The prefixes embed a hash of the pins in versions.mk, so a version bump
# names a stamp that does not exist yet and the next make rebuilds. Anything
# linking these libraries should depend on the stamp as a normal (not
# order-only) prerequisite, or it will not be relinked after a bump.
RDKAFKA_DEV_PREFIX    := $(shell $(DEPS_BUILD) prefix dev)

# The static binary's target: ARCH=x86_64 (the default) or ARCH=aarch64
# (Docker's names amd64 and arm64 are taken too). A target other than the
# host's is cross-compiled with Debian's gcc-<arch>-linux-gnu and
# musl-dev:<debian-arch> (installed by deps/build.sh when missing).
# Only an ARCH on make's command line counts: kernel and embedded build
# environments often export ARCH=x86, arm or riscv for their own use.
ifneq ($(origin ARCH),command line)
ARCH := x86_64
endif
override ARCH := $(patsubst amd64,x86_64,$(patsubst arm64,aarch64,$(ARCH)))
ifeq ($(filter x86_64 aarch64,$(ARCH)),)
$(error ARCH=$(ARCH): the static build targets x86_64 (amd64) or aarch64 (arm64))
endif
RDKAFKA_STATIC_PREFIX := $(shell $(DEPS_BUILD) prefix static-$(ARCH))

# --- dev flavour (system gcc, Debian's libssl/zlib/libzstd) ---------------
RDKAFKA_DEV_STAMP := $(RDKAFKA_DEV_PREFIX)/.stamp
RDKAFKA_CFLAGS    := -isystem $(RDKAFKA_DEV_PREFIX)/include
RDKAFKA_LIBS      := $(RDKAFKA_DEV_PREFIX)/lib/librdkafka.a \
                     -lssl -lcrypto -lzstd -lz -lpthread -lm -ldl

$(RDKAFKA_DEV_STAMP):
	$(DEPS_BUILD) dev

# --- static flavour (musl, every dependency built from source) ------------
MUSL_CC := $(ARCH)-linux-musl-gcc
CROSS_STRIP := $(ARCH)-linux-gnu-strip
RDKAFKA_STATIC_STAMP  := $(RDKAFKA_STATIC_PREFIX)/.stamp
RDKAFKA_STATIC_CFLAGS := -isystem $(RDKAFKA_STATIC_PREFIX)/include
RDKAFKA_STATIC_LIBS   := $(addprefix $(RDKAFKA_STATIC_PREFIX)/lib/, \
                           librdkafka.a libssl.a libcrypto.a libzstd.a libz.a) \
                         -lpthread -lm
RDKAFKA_STATIC_LDFLAGS := -static -Wl,--gc-sections

$(RDKAFKA_STATIC_STAMP):
	$(DEPS_BUILD) static-$(ARCH)

.PHONY: deps deps-static static static-clean
deps: $(RDKAFKA_DEV_STAMP)
deps-static: $(RDKAFKA_STATIC_STAMP)

# --- make static -> ./kbridge-static (ARCH=aarch64: ./kbridge-static-aarch64)
KB_CFLAGS ?= -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP
ifeq ($(ARCH),x86_64)
STATIC_B   := build/static
STATIC_BIN := kbridge-static
else
STATIC_B   := build/static-$(ARCH)
STATIC_BIN := kbridge-static-$(ARCH)
endif
STATIC_OBJS  = $(patsubst %.c,$(STATIC_B)/%.o,$(MAIN_SRC) $(LIB_SRCS))

# Objects depend on the stamp (not order-only): -MMD does not list -isystem
# headers, so this is what recompiles them after a librdkafka bump.
# RDKAFKA_STATIC_CFLAGS comes first: KB_CFLAGS may carry the dev -isystem
# path too, and the first directory searched wins.
$(STATIC_OBJS): $(STATIC_B)/%.o: %.c $(RDKAFKA_STATIC_STAMP)
	@mkdir -p $(@D)
	$(MUSL_CC) $(RDKAFKA_STATIC_CFLAGS) $(KB_CFLAGS) -O2 \
	    -ffunction-sections -fdata-sections -c -o $@ $<

# The libraries are cached, musl is Debian's installed package: its pin is
# checked at every link, not only when the libraries were built.
$(STATIC_B)/kbridge: $(STATIC_OBJS) $(RDKAFKA_STATIC_STAMP)
	@$(DEPS_BUILD) check static-$(ARCH)
	$(MUSL_CC) $(RDKAFKA_STATIC_LDFLAGS) -O2 -o $@ $(STATIC_OBJS) \
	    $(RDKAFKA_STATIC_LIBS)

$(STATIC_BIN): $(STATIC_B)/kbridge
	$(CROSS_STRIP) -o $@ $<
	@! readelf -d $@ | grep -q NEEDED || { echo "$@ is not static" >&2; exit 1; }

# The size is printed on every run, not only when the binary was relinked.
static: $(STATIC_BIN)
	@stat -c %s $(STATIC_BIN) | awk '{ printf "$(STATIC_BIN): %d bytes (%.2f MB, %.2f MiB) stripped, $(ARCH)\n", $$1, $$1 / 1e6, $$1 / 1048576 }'

.PHONY: static-path static-runner
# For scripts (Dockerfile.scratch, tests/static/run.sh): the binary's name for
# ARCH, and the emulator that runs it here (nothing on a host of that arch).
static-path:
	@echo $(STATIC_BIN)
static-runner:
	@[ "$$(uname -m)" = $(ARCH) ] || echo qemu-$(ARCH)-static

# Both architectures' objects and binaries.
static-clean:
	rm -rf build/static build/static-* kbridge-static kbridge-static-*
clean: static-clean

-include $(wildcard $(STATIC_B)/*.d)

.DEFAULT_GOAL := $(_DEPS_GOAL)
