# `make bench` runs `make -f bench/bench.mk`: every part below. Each part is
# self-contained: it adds itself to `all` and builds what it needs from build/.
.PHONY: all
all:

# ---- core: Linear vs bare BLAS, the MLP vs PyTorch, SimpleNN per call ----------------
CORE_BENCH_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O3 -g -Wall -Wextra \
                     -Werror -I. $(shell pkg-config --cflags openblas)
CORE_BENCH_LIBS   := build/libsrv.a build/libnncore.a $(shell pkg-config --libs openblas) -lm -pthread
.PHONY: bench-core bench-kernel
all: bench-kernel bench-core
build/bench/bench_core: bench/bench_core.c build/libnncore.a build/libsrv.a core/nn.h server/blas.h
	@mkdir -p $(dir $@)
	$(CC) $(CORE_BENCH_CFLAGS) -o $@ $< $(CORE_BENCH_LIBS)
build/libnncore.a: $(wildcard core/*.c core/*.h)
	$(MAKE) --no-print-directory build/libnncore.a
bench-core: build/bench/bench_core
	build/bench/bench_core bench

# ---- the BLAS kernel check: Linear throughput with relud's check on vs off ------------
bench-kernel: build/bench/bench_core
	bench/kernel.sh

# ---- http: relud vs a minimal libmicrohttpd server, wrk at 1 and 16 connections ------
.PHONY: bench-http
all: bench-http
build/bench/minimal_server: bench/minimal_server.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror \
	  $(shell pkg-config --cflags libmicrohttpd) -o $@ $< $(shell pkg-config --libs libmicrohttpd) -pthread
bench-http: build/bench/minimal_server build/relud
	bench/http.sh

# ---- codec: JSON decode/encode of float32 tensors vs cJSON, converter ceilings -------
CODEC_BENCH_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O3 -g -Wall -Wextra \
                      -Werror -I. $(shell pkg-config --cflags libcjson)
CODEC_BENCH_LIBS   := build/libsrv.a $(shell pkg-config --libs libcjson) -lstdc++ -lm -pthread
.PHONY: bench-codec
all: bench-codec
build/bench/bench_codec: bench/bench_codec.c build/libsrv.a server/codec.h core/nn.h
	@mkdir -p $(dir $@)
	$(CC) $(CODEC_BENCH_CFLAGS) -o $@ $< $(CODEC_BENCH_LIBS)
build/libsrv.a: $(wildcard server/*.c server/*.cc server/*.h)
	$(MAKE) --no-print-directory build/libsrv.a
bench-codec: build/bench/bench_codec
	build/bench/bench_codec
