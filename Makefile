# cxr_attn: a plain PGXS build. The numerical core (src/core) has no PostgreSQL dependency and
# is also built on its own for the unit tests (make check-core).
EXTENSION = cxr_attn
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")

MODULE_big = cxr_attn
CORE_SRCS = $(sort $(wildcard src/core/*.c))
PG_SRCS = $(sort $(wildcard src/pg/*.c))
OBJS = $(CORE_SRCS:.c=.o) $(PG_SRCS:.c=.o)

# upgrade scripts, and the first release's full script (kept so 0.1.0 can still be installed
# and the upgrade path tested)
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql) sql/$(EXTENSION)--0.1.0.sql
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# The shipped default model, when there is one (see weights/MODEL_CARD.md).
DATA += $(wildcard weights/cxr_attn_default.safetensors)

# default_model runs first: it checks what CREATE EXTENSION registered
REGRESS = default_model png_kinds models permissions train
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)

WARN = -Wall -Wextra -Werror
PG_CPPFLAGS = -Isrc/core
PG_CFLAGS = -std=gnu11 $(WARN) -Wno-declaration-after-statement -Wno-unused-parameter -Wno-sign-compare
SHLIB_LINK = -lpng -lz -ldl -lm -lpthread
EXTRA_CLEAN = test/bin test/fixtures results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# ---- the numerical core on its own ----
CORE_CC ?= gcc
CORE_CFLAGS = -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Isrc/core
CORE_LIBS = -lpng -lz -ldl -lm -lpthread
UNIT_TESTS = $(patsubst test/unit/%.c,test/bin/%,$(wildcard test/unit/test_*.c))
PYTHON ?= /usr/bin/python3

test/bin/%: test/unit/%.c test/unit/harness.h $(CORE_SRCS) $(wildcard src/core/*.h)
	@mkdir -p test/bin
	$(CORE_CC) $(CORE_CFLAGS) -Itest/unit -o $@ $< $(CORE_SRCS) $(CORE_LIBS)

test/fixtures/.done: test/ref/reference.py
	$(PYTHON) test/ref/reference.py --out test/fixtures
	touch $@

# what the pg_regress scripts read: the core CLI and a random model it wrote
test/bin/random_attn2.safetensors: test/bin/cxr_cli
	test/bin/cxr_cli init alexnet_attn2 scaled_dot 7 $@

installcheck: test/bin/random_attn2.safetensors

check-core: $(UNIT_TESTS) test/fixtures/.done
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; CXR_FIXTURES=test/fixtures $$t; done

.PHONY: check-core

# ---- fuzzing the core's parsers (clang with libFuzzer): make fuzz FUZZ_SECONDS=60 ----
FUZZ_SECONDS ?= 30
test/bin/fuzz_%: test/fuzz/fuzz_%.c $(CORE_SRCS)
	@mkdir -p test/bin
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/core -o $@ $< $(CORE_SRCS) $(CORE_LIBS)

fuzz: test/bin/fuzz_model_file test/bin/fuzz_png
	@mkdir -p test/bin/corpus_png test/bin/corpus_model
	cp test/data/*.png test/bin/corpus_png/
	test/bin/cxr_cli init alexnet_attn1 dot 1 test/bin/corpus_model/seed.safetensors 2>/dev/null || true
	test/bin/fuzz_png -max_total_time=$(FUZZ_SECONDS) -max_len=65536 test/bin/corpus_png
	test/bin/fuzz_model_file -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 test/bin/corpus_model

.PHONY: fuzz
