# kbridge - plain Makefile. Targets: all (./kbridge), test, asan, fuzz, static,
# bench, clean. Objects and test programs go to build/ (never committed).

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
KB_CFLAGS += $(RDKAFKA_CFLAGS)
LDLIBS    += $(RDKAFKA_LIBS)

B        := build
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/%)

.PHONY: all test unit asan fuzz clean
all: kbridge

# Objects wait for librdkafka's headers (built into the cache on first use).
$(B)/%.o: %.c | $(B) $(RDKAFKA_DEV_STAMP)
	$(CC) $(KB_CFLAGS) -c -o $@ $<
$(B):
	mkdir -p $(B)

kbridge: $(B)/kbridge.o $(LIB_OBJS)
	$(CC) $(KB_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/test_%: tests/unit/test_%.c $(LIB_OBJS) tests/unit/check.h
	$(CC) $(KB_CFLAGS) -I. -o $@ $< $(LIB_OBJS) $(LDLIBS)

unit: $(UNIT_BINS)

test: all unit
	tests/run.sh

clean:
	rm -rf $(B) kbridge kbridge-asan

-include $(wildcard $(B)/*.d)
