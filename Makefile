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
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql) sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.2.0.sql \
       sql/$(EXTENSION)--0.3.0.sql sql/$(EXTENSION)--0.4.0.sql sql/$(EXTENSION)--0.5.0.sql \
       sql/$(EXTENSION)--0.6.0.sql sql/$(EXTENSION)--0.7.0.sql sql/$(EXTENSION)--0.8.0.sql \
       sql/$(EXTENSION)--0.9.0.sql
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# The shipped default model, when there is one (see weights/MODEL_CARD.md).
DATA += $(wildcard weights/cxr_attn_default.safetensors)

# default_model runs first: it checks what CREATE EXTENSION registered
REGRESS = default_model png_kinds models permissions security batch identity train train_resume dicom
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)

WARN = -Wall -Wextra -Werror
PG_CPPFLAGS = -Isrc/core -I/usr/include/openjpeg-2.5
# GNU C would fuse a * b + c into one rounding where the CPU has FMA (the vector clones): the
# extension keeps the ISO C arithmetic the core is tested with (make check-core, -std=c11)
PG_CFLAGS = -std=gnu11 -ffp-contract=off $(WARN) -Wno-declaration-after-statement -Wno-unused-parameter -Wno-sign-compare
SHLIB_LINK = -lpng -ljpeg -lopenjp2 -lz -ldl -lm -lpthread
EXTRA_CLEAN = test/bin test/fixtures test/dicom_fixtures results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
# the bitcode PostgreSQL's JIT may inline: clang contracts a * b + c by default too
override BITCODE_CFLAGS += -ffp-contract=off

# PGXS's implicit rules know no headers: every object depends on all of them (a struct change in
# one would otherwise leave objects built against the old layout)
$(OBJS) $(OBJS:.o=.bc): $(wildcard src/core/*.h src/pg/*.h)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# ---- the numerical core on its own ----
CORE_CC ?= gcc
CORE_CFLAGS = -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Isrc/core -I/usr/include/openjpeg-2.5
CORE_LIBS = -lpng -ljpeg -lopenjp2 -lz -ldl -lm -lpthread
UNIT_TESTS = $(patsubst test/unit/%.c,test/bin/%,$(wildcard test/unit/test_*.c))
PYTHON ?= /usr/bin/python3

test/bin/%: test/unit/%.c test/unit/harness.h test/unit/interrupt_hook.h $(CORE_SRCS) $(wildcard src/core/*.h)
	@mkdir -p test/bin
	$(CORE_CC) $(CORE_CFLAGS) -Itest/unit -o $@ $< $(CORE_SRCS) $(CORE_LIBS)

test/fixtures/.done: test/ref/reference.py test/ref/resnet_reference.py test/ref/cxrnet.py
	$(PYTHON) test/ref/reference.py --out test/fixtures
	$(PYTHON) test/ref/resnet_reference.py --out test/fixtures
	touch $@

# what the pg_regress scripts read: the core CLI and a random model it wrote
test/bin/random_attn2.safetensors: test/bin/cxr_cli
	test/bin/cxr_cli init alexnet_attn2 scaled_dot 7 $@

installcheck: test/bin/random_attn2.safetensors

# DICOM files, JPEG and JPEG 2000 streams with the pixels pydicom, GDCM, DCMTK and PIL decode
# from them (or the pixels they were made from, for lossless codecs)
test/dicom_fixtures/.done: test/ref/dicom_reference.py test/ref/codec_fixtures.py
	rm -rf test/dicom_fixtures
	$(PYTHON) test/ref/dicom_reference.py --out test/dicom_fixtures
	$(PYTHON) test/ref/codec_fixtures.py --out test/dicom_fixtures/codecs
	touch $@

# the core library's benchmark (bench/run.sh)
bench/bin/bench_core: bench/bench_core.c $(CORE_SRCS) $(wildcard src/core/*.h)
	@mkdir -p bench/bin
	$(CORE_CC) $(CORE_CFLAGS) -o $@ $< $(CORE_SRCS) $(CORE_LIBS)

check-core: $(UNIT_TESTS) test/fixtures/.done test/dicom_fixtures/.done
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; \
		CXR_FIXTURES=test/fixtures CXR_DICOM_FIXTURES=test/dicom_fixtures \
		CXR_CODEC_FIXTURES=test/dicom_fixtures/codecs $$t; done
	@# inference against PyTorch again on every other dot-kernel path this CPU can run
	@set -e; for p in $$(test/bin/test_batch paths); do \
		echo "== test/bin/test_reference, inference on dot path $$p"; \
		CXR_DOT_PATH=$$p CXR_REFERENCE_INFERENCE_ONLY=1 CXR_FIXTURES=test/fixtures test/bin/test_reference; done
	@# and on every path of the Winograd products (pointwise layers too) and the one-channel
	@# convolution
	@set -e; for p in $$(test/bin/test_winograd paths); do \
		echo "== test/bin/test_winograd, test_pointwise and test_reference inference, convolution kernels' path $$p"; \
		CXR_WINO_PATH=$$p test/bin/test_winograd; \
		CXR_WINO_PATH=$$p test/bin/test_pointwise; \
		CXR_WINO_PATH=$$p CXR_CONV_GRAY_PATH=$$p CXR_REFERENCE_INFERENCE_ONLY=1 \
			CXR_FIXTURES=test/fixtures test/bin/test_reference; done

.PHONY: check-core

# ---- fuzzing (clang with libFuzzer): make fuzz FUZZ_SECONDS=60 ----
# Ten targets: PNG decoding, model files, training states, resizing, drawing, the DICOM reader,
# the JPEG, JPEG 2000 and RLE codecs, and the format dispatcher over all of them. Each starts from
# real files (drawing: inputs encoded by test/fuzz/seed_draw.py; DICOM and codecs: the files of
# test/sql/dicom.sql, the oracle fixtures and pydicom's own test files), written afresh into
# $(FUZZ_SEEDS) (any seed step that fails stops make); what a PNG, resize or drawing fuzzer
# finds accumulates in $(FUZZ_CORPUS); crashes land in $(FUZZ_CRASHES).
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Isrc/core -I/usr/include/openjpeg-2.5
FUZZ_TARGETS = $(patsubst test/fuzz/%.c,test/bin/%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_SEEDS = test/bin/fuzz_seeds
FUZZ_CORPUS = test/bin/fuzz_corpus
FUZZ_CRASHES = test/bin/fuzz_crashes
FUZZ_RUN = -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=4096
# Model files of the attention networks are ~15 MB; alexnet's (233 MB) is too large to mutate,
# so every model and state also goes in as its header plus 256 bytes of data, where parsing
# happens and mutations are cheap. A training state of alexnet_attn1 is 44 MB.
FUZZ_MODEL_MAX_LEN = 16000000
FUZZ_STATE_MAX_LEN = 48000000
# $(call st_prefix,IN,OUT): the safetensors header of IN (8-byte length, JSON) and 256 bytes
st_prefix = hl=$$(od -An -t u8 -N8 $(1) | tr -d ' '); test -n "$$hl"; \
	head -c $$((8 + hl + 256)) $(1) > $(2)

test/bin/fuzz_%: test/fuzz/fuzz_%.c $(CORE_SRCS) $(wildcard src/core/*.h)
	@mkdir -p test/bin
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRCS) $(CORE_LIBS)

PYDICOM_FILES = /usr/lib/python3/dist-packages/pydicom/data/test_files

fuzz-seeds: test/bin/cxr_cli test/dicom_fixtures/.done
	rm -rf $(FUZZ_SEEDS)
	mkdir -p $(FUZZ_SEEDS)/png $(FUZZ_SEEDS)/model $(FUZZ_SEEDS)/state $(FUZZ_SEEDS)/resize \
		$(FUZZ_SEEDS)/draw $(FUZZ_SEEDS)/dicom $(FUZZ_SEEDS)/jpeg $(FUZZ_SEEDS)/j2k $(FUZZ_SEEDS)/rle
	$(PYTHON) test/fuzz/seed_pngs.py test/sql/dicom.sql $(FUZZ_SEEDS)/dicom all
	find test/dicom_fixtures $(PYDICOM_FILES) -name '*.dcm' -size -1M -exec cp {} $(FUZZ_SEEDS)/dicom/ \;
	cp test/dicom_fixtures/codecs/*jpeg*.bin test/dicom_fixtures/*.jpg $(FUZZ_SEEDS)/jpeg/ 2>/dev/null; \
		test -n "$$(ls $(FUZZ_SEEDS)/jpeg)"
	cp test/dicom_fixtures/codecs/*j2k*.bin $(FUZZ_SEEDS)/j2k/ 2>/dev/null; test -n "$$(ls $(FUZZ_SEEDS)/j2k)"
	@# rle: 4 bytes of geometry (test/fuzz/fuzz_rle.c: 13x13, 1 sample, 16 bits), then a frame
	$(PYTHON) test/fuzz/seed_rle.py test/sql/dicom.sql $(FUZZ_SEEDS)/rle
	cp test/data/*.png $(FUZZ_SEEDS)/png/
	$(PYTHON) test/fuzz/seed_pngs.py test/sql/png_kinds.sql $(FUZZ_SEEDS)/png
	set -e; for a in alexnet alexnet_attn1 alexnet_attn2 alexnet_attn3; do \
		test/bin/cxr_cli init $$a dot 1 $(FUZZ_SEEDS)/$$a.safetensors; \
		$(call st_prefix,$(FUZZ_SEEDS)/$$a.safetensors,$(FUZZ_SEEDS)/model/$$a.head); done
	mv $(FUZZ_SEEDS)/alexnet_attn*.safetensors $(FUZZ_SEEDS)/model/
	rm $(FUZZ_SEEDS)/alexnet.safetensors
	test/bin/cxr_cli init alexnet_attn2 scaled_dot 2 $(FUZZ_SEEDS)/model/attn2_scaled.safetensors
	test/bin/cxr_cli forest 3 $(FUZZ_SEEDS)/model/forest.safetensors
	test/bin/cxr_cli state alexnet_attn1 dot 3 $(FUZZ_SEEDS)/state/attn1.state
	$(call st_prefix,$(FUZZ_SEEDS)/state/attn1.state,$(FUZZ_SEEDS)/state/attn1.head)
	test/bin/cxr_cli state alexnet_attn2 dot 4 $(FUZZ_SEEDS)/attn2.state
	$(call st_prefix,$(FUZZ_SEEDS)/attn2.state,$(FUZZ_SEEDS)/state/attn2.head)
	rm $(FUZZ_SEEDS)/attn2.state
	cp $(FUZZ_SEEDS)/model/alexnet_attn1.head $(FUZZ_SEEDS)/state/model.head
	@# resize: sides (2 bytes each: sw sh dw dh), value scale, then pixels (test/fuzz/fuzz_resize.c)
	printf '\001\053\001\053\001\052\001\052\010' | cat - test/data/xray0.png > $(FUZZ_SEEDS)/resize/shrink
	printf '\000\002\001\377\000\143\000\077\010' | cat - test/data/xray1.png > $(FUZZ_SEEDS)/resize/tall
	printf '\000\012\000\012\001\377\001\377\020' | cat - test/data/xray2.png > $(FUZZ_SEEDS)/resize/grow
	@# drawing: one byte picks canvas operations, overlay, figure or plot (test/fuzz/fuzz_draw.c)
	$(PYTHON) test/fuzz/seed_draw.py $(FUZZ_SEEDS)/draw

fuzz: $(FUZZ_TARGETS) fuzz-seeds
	@# units found in model files and states are megabytes each: start those afresh every run
	rm -rf $(FUZZ_CORPUS)/model $(FUZZ_CORPUS)/state
	mkdir -p $(FUZZ_CRASHES) $(FUZZ_CORPUS)/png $(FUZZ_CORPUS)/model $(FUZZ_CORPUS)/state \
		$(FUZZ_CORPUS)/resize $(FUZZ_CORPUS)/draw $(FUZZ_CORPUS)/dicom $(FUZZ_CORPUS)/jpeg \
		$(FUZZ_CORPUS)/j2k $(FUZZ_CORPUS)/image $(FUZZ_CORPUS)/rle
	test/bin/fuzz_dicom $(FUZZ_RUN) -max_len=65536 -artifact_prefix=$(FUZZ_CRASHES)/dicom- \
		$(FUZZ_CORPUS)/dicom $(FUZZ_SEEDS)/dicom
	test/bin/fuzz_jpeg $(FUZZ_RUN) -max_len=65536 -artifact_prefix=$(FUZZ_CRASHES)/jpeg- \
		$(FUZZ_CORPUS)/jpeg $(FUZZ_SEEDS)/jpeg
	test/bin/fuzz_j2k $(FUZZ_RUN) -max_len=65536 -artifact_prefix=$(FUZZ_CRASHES)/j2k- \
		$(FUZZ_CORPUS)/j2k $(FUZZ_SEEDS)/j2k
	test/bin/fuzz_rle $(FUZZ_RUN) -max_len=65536 -artifact_prefix=$(FUZZ_CRASHES)/rle- \
		$(FUZZ_CORPUS)/rle $(FUZZ_SEEDS)/rle
	test/bin/fuzz_image $(FUZZ_RUN) -max_len=65536 -artifact_prefix=$(FUZZ_CRASHES)/image- \
		$(FUZZ_CORPUS)/image $(FUZZ_SEEDS)/dicom $(FUZZ_SEEDS)/jpeg $(FUZZ_SEEDS)/png
	test/bin/fuzz_png $(FUZZ_RUN) -max_len=65536 -artifact_prefix=$(FUZZ_CRASHES)/png- \
		$(FUZZ_CORPUS)/png $(FUZZ_SEEDS)/png
	test/bin/fuzz_resize $(FUZZ_RUN) -max_len=65536 -artifact_prefix=$(FUZZ_CRASHES)/resize- \
		$(FUZZ_CORPUS)/resize $(FUZZ_SEEDS)/resize
	test/bin/fuzz_draw $(FUZZ_RUN) -max_len=4096 -artifact_prefix=$(FUZZ_CRASHES)/draw- \
		$(FUZZ_CORPUS)/draw $(FUZZ_SEEDS)/draw
	test/bin/fuzz_model_file $(FUZZ_RUN) -max_len=$(FUZZ_MODEL_MAX_LEN) \
		-artifact_prefix=$(FUZZ_CRASHES)/model- $(FUZZ_CORPUS)/model $(FUZZ_SEEDS)/model
	test/bin/fuzz_train_state $(FUZZ_RUN) -max_len=$(FUZZ_STATE_MAX_LEN) \
		-artifact_prefix=$(FUZZ_CRASHES)/state- $(FUZZ_CORPUS)/state $(FUZZ_SEEDS)/state

.PHONY: fuzz fuzz-seeds
