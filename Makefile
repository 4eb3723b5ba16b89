# Beacon build. `make` builds everything into build/ (or build/san/ for
# `make check`). Generated protobuf-c code lives in $(BUILD)/gen and is never
# committed. Every service links the one common library.

SERVICES   := gateway intake scheduling notes referral reporting
SAN        ?= 0
ifeq ($(SAN),1)
BUILD      ?= build/san
SANFLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT        := -O1
else
BUILD      ?= build
SANFLAGS   :=
OPT        := -O2
endif

CC         ?= cc
PKGS       := libzmq libprotobuf-c libpq jansson openssl libh2o-evloop libargon2 libarchive
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN       := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-missing-field-initializers
CFLAGS     := -std=gnu11 $(OPT) -g $(WARN) -pthread $(SANFLAGS) -D_GNU_SOURCE \
              -DH2O_USE_LIBUV=0 \
              -Icommon -I$(BUILD)/gen $(PKG_CFLAGS)
GENFLAGS   := $(filter-out -Wshadow,$(CFLAGS)) -Wno-unused-parameter
LDFLAGS    := -pthread $(SANFLAGS)
# libcsv (Debian libcsv-dev) ships no pkg-config file.
LIBS       := $(PKG_LIBS) -lcsv -lm

PROTOS     := $(wildcard proto/*.proto)
TEST_PROTOS:= $(wildcard tests/unit/*.proto)
GEN_C      := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_H      := $(GEN_C:.c=.h)
TGEN_C     := $(patsubst tests/unit/%.proto,$(BUILD)/gen/%.pb-c.c,$(TEST_PROTOS))
TGEN_H     := $(TGEN_C:.c=.h)
COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC)) $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(GEN_C))
LIB        := $(BUILD)/libbeacon.a
BINS       := $(patsubst %,$(BUILD)/bin/beacon-%,$(SERVICES))
# Operator tools: common/tools/<name>.c -> beacon-<name> (one file each, e.g. audit-verify.c).
TOOL_SRC   := $(wildcard common/tools/*.c)
TOOLS      := $(patsubst common/tools/%.c,$(BUILD)/bin/beacon-%,$(TOOL_SRC))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)

Q          ?= @
VERSION    := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all deps run test check bench clean format unit fuzz FORCE
.SECONDARY:

all: $(BINS) $(TOOLS) $(UNIT_BINS)

deps:
	@bash deploy/install-deps.sh

# The version header changes only when `git describe` does, so only the few
# files that print the version are rebuilt.
$(BUILD)/gen/bc_version.h: FORCE
	@mkdir -p $(BUILD)/gen
	@echo '#define BEACON_VERSION "$(VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(BUILD)/gen -Iproto $<

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: tests/unit/%.proto
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(BUILD)/gen -Iproto -Itests/unit $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c | $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(GENFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(GEN_H) $(TGEN_H) $(BUILD)/gen/bc_version.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)ar rcs $@ $^

define service_rule
$(BUILD)/bin/beacon-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard services/$(1)/*.c)) $(LIB)
	@mkdir -p $$(dir $$@)
	@echo "  LD      $$@"
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

$(BUILD)/bin/beacon-%: $(BUILD)/obj/common/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests of a service's own code link that code too (all but main.c).
$(BUILD)/tests/test_identity: $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out services/gateway/main.c,$(wildcard services/gateway/identity*.c)))
$(BUILD)/tests/test_instrument: $(BUILD)/obj/services/intake/instrument.o
# (it lands after the library on the link line, so the library is listed again)
$(BUILD)/tests/test_instrument: LIBS := $(LIB) $(LIBS)
$(BUILD)/tests/test_recurrence: $(BUILD)/obj/services/scheduling/recurrence.o
$(BUILD)/tests/test_recurrence: LIBS := $(LIB) $(LIBS)
$(BUILD)/tests/test_ical: $(BUILD)/obj/services/scheduling/ical.o $(BUILD)/obj/services/scheduling/recurrence.o
$(BUILD)/tests/test_ical: LIBS := $(LIB) $(LIBS)
$(BUILD)/tests/test_note_logic: $(BUILD)/obj/services/notes/note_logic.o
$(BUILD)/tests/test_note_logic: LIBS := $(LIB) $(LIBS)
$(BUILD)/tests/test_hsds_csv: $(BUILD)/obj/services/referral/hsds_csv.o
$(BUILD)/tests/test_hsds_csv: LIBS := $(LIB) $(LIBS)
$(BUILD)/tests/test_suppress: $(BUILD)/obj/services/reporting/suppress.o
$(BUILD)/tests/test_suppress: LIBS := $(LIB) $(LIBS)
$(BUILD)/tests/test_plan: $(BUILD)/obj/services/reporting/plan.o
$(BUILD)/tests/test_plan: LIBS := $(LIB) $(LIBS)
$(BUILD)/tests/test_billing: $(BUILD)/obj/services/scheduling/billing_rules.o $(BUILD)/obj/services/scheduling/billing_x12.o
$(BUILD)/tests/test_billing: LIBS := $(LIB) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(TGEN_C)) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

# The two set-up commands. Both install what is missing first.
run: deps
	@$(MAKE) --no-print-directory all
	@bash deploy/run.sh

test: deps
	@$(MAKE) --no-print-directory all
	@bash tests/run.sh $(BUILD)

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
check: deps
	@$(MAKE) --no-print-directory SAN=1 all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  bash tests/run.sh build/san

bench: deps
	@$(MAKE) --no-print-directory all
	@bash tests/bench/run.sh $(BUILD)

unit: all
	@bash tests/run.sh $(BUILD) unit

# Fuzz targets (libFuzzer, clang): `make fuzz FUZZ_SECONDS=60` builds and runs
# each for that long against the sanitizers.
FUZZ_SECONDS ?= 30
fuzz: $(GEN_H) $(TGEN_H) $(BUILD)/gen/bc_version.h
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); echo "  FUZZ    $$n"; \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Icommon -I$(BUILD)/gen \
	    $(PKG_CFLAGS) $$f common/*.c $(BUILD)/gen/*.pb-c.c -o build/fuzz/$$n $(LIBS) || exit 1; \
	  mkdir -p build/fuzz/$$n.corpus; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build/fuzz/$$n.corpus || exit 1; \
	done

format:
	clang-format -i common/*.[ch] services/*/*.[ch] tests/unit/*.c tests/fuzz/*.c

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
