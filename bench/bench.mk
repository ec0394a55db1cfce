# `make bench` runs `make -f bench/bench.mk`: every part below. Each part is
# self-contained: it adds itself to `all` and builds what it needs from build/.
.PHONY: all
all:

# ---- core: Linear vs bare BLAS, the MLP vs PyTorch, SimpleNN per call ----------------
CORE_BENCH_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g -Wall -Wextra \
                     -Werror -I. $(shell pkg-config --cflags openblas)
CORE_BENCH_LIBS   := build/libnncore.a $(shell pkg-config --libs openblas) -lm -pthread
.PHONY: bench-core
all: bench-core
build/bench/bench_core: bench/bench_core.c build/libnncore.a core/nn.h
	@mkdir -p $(dir $@)
	$(CC) $(CORE_BENCH_CFLAGS) -o $@ $< $(CORE_BENCH_LIBS)
build/libnncore.a:
	$(MAKE) --no-print-directory build/libnncore.a
bench-core: build/bench/bench_core
	build/bench/bench_core bench
