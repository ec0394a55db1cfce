# relud — one Makefile. `make run`, `make test`, `make bench`, `make asan`, `make fuzz`.
# Build folders per mode: build/ (release), build/debug, build/asan.
MODE ?= release
ifeq ($(MODE),release)
  B := build
  OPT := -O3 -g
else ifeq ($(MODE),debug)
  B := build/debug
  OPT := -O0 -g3
else ifeq ($(MODE),asan)
  B := build/asan
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
else
  $(error MODE must be release, debug or asan)
endif

CC  ?= cc
CXX ?= g++
PKGS := libmicrohttpd openblas zlib gnutls libprotobuf-c
# Debian packages: build, tests (cmocka, libcurl, nginx for the failover test; Python requests
# and wget as third-party clients; prometheus for promtool; Chromium, its driver and Selenium
# for the console in a browser; jsonschema for the OpenAPI document; torch for tools/relud-export's
# test), bench (wrk).
DEB_BUILD := gcc g++ make pkg-config libmicrohttpd-dev libopenblas-dev libfast-float-dev zlib1g-dev \
             libgnutls28-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev
DEB_TEST  := libcmocka-dev libcurl4-openssl-dev libcjson-dev curl nginx-light python3 python3-requests \
             python3-numpy python3-cryptography wget prometheus chromium chromium-driver \
             python3-selenium python3-jsonschema python3-torch
DEB_BENCH := wrk

# -O3 and -fno-trapping-math let GCC vectorize the elementwise loops (relu and its
# backward went from ~4.4 ns to ~0.1 ns per element): no FP traps are ever enabled, so
# this changes no result. Never the fast-math flags (they break GELU and isfinite).
NUMFLAGS := -fno-trapping-math
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_ALL   := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) $(NUMFLAGS) $(WARN) -pthread \
                -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
CXXFLAGS_ALL := -std=c++17 $(OPT) -Wall -Wextra -Werror -fno-exceptions -fno-rtti -I. $(CXXFLAGS)
LDLIBS_ALL   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lstdc++ -lm -pthread $(LDLIBS)
LDFLAGS_ALL  := $(OPT) $(LDFLAGS)
TEST_LIBS    := -lcmocka $(shell pkg-config --libs libcurl libcjson 2>/dev/null)

CORE_SRC   := $(wildcard core/*.c)
CONFIG_SRC := $(wildcard config/*.c)
SRV_C      := $(filter-out server/main.c,$(wildcard server/*.c))
SRV_CXX    := $(wildcard server/*.cc)
obj = $(patsubst %.c,$(B)/obj/%.o,$(patsubst %.cc,$(B)/obj/%.o,$(1)))

LIBCORE   := $(B)/libnncore.a
LIBCONFIG := $(B)/libcfg.a
LIBSRV    := $(B)/libsrv.a
RELUD     := $(B)/relud
LIBS      := $(LIBSRV) $(LIBCONFIG) $(LIBCORE)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
HTTP_TESTS := $(patsubst tests/http/%.c,$(B)/tests/%,$(wildcard tests/http/test_*.c))
TEST_COMMON := $(call obj,$(wildcard tests/common/*.c))

.PHONY: all deps run test test-kernels check asan fuzz bench fmt fmt-check clean golden models
all: $(RELUD)

# Installs what is missing when run as root; otherwise says what to install.
deps:
	@tools/deps.sh $(DEB_BUILD) $(DEB_TEST)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"; $(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@
$(B)/obj/%.o: %.cc
	@mkdir -p $(dir $@)
	@echo "CXX $<"; $(CXX) $(CXXFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIBCORE): $(call obj,$(CORE_SRC))
	@rm -f $@; ar rcs $@ $^
$(LIBCONFIG): $(call obj,$(CONFIG_SRC))
	@rm -f $@; ar rcs $@ $^
$(LIBSRV): $(call obj,$(SRV_C) $(SRV_CXX)) $(B)/obj/gen/onnx.pb-c.o
	@rm -f $@; ar rcs $@ $^

$(RELUD): $(B)/obj/server/main.o $(LIBS)
	@echo "LD  $@"; $(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# The web console and the OpenAPI document (web/) are assembled into console.o (.incbin).
WEB_FILES := $(wildcard web/*.html web/*.json web/console/*)
$(B)/obj/server/console.o: $(WEB_FILES)

# ONNX models (server/onnx.c) are decoded by protobuf-c code generated at build time from the
# onnx.proto Debian's libonnx-dev installs: nothing generated is vendored. Its object is
# compiled without relud's -Werror warnings (generated code, not ours).
ONNX_PROTO := /usr/include/onnx/onnx.proto
$(B)/gen/onnx/onnx.pb-c.c $(B)/gen/onnx/onnx.pb-c.h &: $(ONNX_PROTO)
	@mkdir -p $(B)/gen
	@echo "GEN $(B)/gen/onnx/onnx.pb-c.c"; protoc-c --proto_path=$(dir $(ONNX_PROTO)).. \
	  --c_out=$(B)/gen onnx/onnx.proto
$(B)/obj/gen/onnx.pb-c.o: $(B)/gen/onnx/onnx.pb-c.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"; $(CC) -std=c11 $(OPT) -I$(B)/gen $(shell pkg-config --cflags libprotobuf-c) -c $< -o $@
$(B)/obj/server/onnx.o: $(B)/gen/onnx/onnx.pb-c.h
$(B)/obj/server/onnx.o: CFLAGS_ALL += -I$(B)/gen

$(B)/tests/%: tests/unit/%.c $(TEST_COMMON) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "LD  $@"; $(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(TEST_COMMON) $(LIBS) $(TEST_LIBS) $(LDLIBS_ALL)
$(B)/tests/%: tests/http/%.c $(TEST_COMMON) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "LD  $@"; $(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(TEST_COMMON) $(LIBS) $(TEST_LIBS) $(LDLIBS_ALL)

tests-build: $(RELUD) $(UNIT_TESTS) $(HTTP_TESTS)
.PHONY: tests-build

# The README's test command: builds and runs every suite, ends with "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory tests-build
	@RELUD=$(abspath $(RELUD)) tools/run-tests.sh $(UNIT_TESTS) $(HTTP_TESTS) tests/clients/run.sh \
	  tests/layering/run.sh tests/failover/run.sh tests/openapi/run.sh tests/browser/run.sh

# The golden, docs and HTTP suites once more under each OpenBLAS kernel below that the CPU
# can run: results may differ in float32's last digits between kernels, and a test that
# passes on one kernel only must fail somewhere. CI runs it.
KERNELS ?= Prescott Haswell SkylakeX
KERNEL_SUITES := $(B)/tests/test_golden $(B)/tests/test_linear $(B)/tests/test_blas $(HTTP_TESTS)
test-kernels: deps
	@$(MAKE) --no-print-directory tests-build
	@RELUD=$(abspath $(RELUD)) tools/test-kernels.sh $(KERNELS) -- $(KERNEL_SUITES)

# Same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@$(MAKE) --no-print-directory MODE=asan tests-build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  RELUD=build/asan/relud tools/run-tests.sh $(patsubst build/%,build/asan/%,$(UNIT_TESTS) $(HTTP_TESTS))

# Starts relud on the bundled example models in config/models; its "ready" line gives the
# address it really bound (RELUD_PORT=0 picks a free port).
run: deps $(RELUD)
	@exec $(RELUD) --config config/relud.conf

# libFuzzer over request parsing + validation (clang). FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 60
fuzz:
	@tools/deps.sh clang libclang-rt-14-dev
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk FUZZ_SECONDS=$(FUZZ_SECONDS)

bench: deps $(RELUD)
	@tools/deps.sh $(DEB_BENCH)
	@$(MAKE) --no-print-directory -f bench/bench.mk

# Regenerate golden vectors / example models (needs Debian's python3-torch; the ONNX models
# python3-onnx too: tools/gen_onnx.py).
golden:
	/usr/bin/python3 tests/golden/gen.py
	/usr/bin/python3 tools/gen_train_golden.py
models:
	/usr/bin/python3 tools/gen_models.py

fmt:
	clang-format -i $(CORE_SRC) $(CONFIG_SRC) $(SRV_C) $(SRV_CXX) server/main.c core/*.h config/*.h server/*.h
fmt-check:
	clang-format --dry-run --Werror $(CORE_SRC) $(CONFIG_SRC) $(SRV_C) $(SRV_CXX) server/main.c core/*.h config/*.h server/*.h

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
