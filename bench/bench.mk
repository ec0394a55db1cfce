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
build/bench/bench_core: bench/bench_core.c bench/stats.h bench/torch_child.h build/libnncore.a build/libsrv.a core/nn.h server/blas.h
	@mkdir -p $(dir $@)
	$(CC) $(CORE_BENCH_CFLAGS) -o $@ $< $(CORE_BENCH_LIBS)
build/libnncore.a: $(wildcard core/*.c core/*.h)
	$(MAKE) --no-print-directory build/libnncore.a
build/libsrv.a: $(wildcard server/*.c server/*.cc server/*.h)
	$(MAKE) --no-print-directory build/libsrv.a
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

# ---- request path: the daemon end to end vs its parts; binary OIP vs nn_net_run -------
REQ_BENCH_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O3 -g -Wall -Wextra \
                    -Werror -I. $(shell pkg-config --cflags openblas libcurl)
REQ_BENCH_LIBS   := build/libsrv.a build/libcfg.a build/libnncore.a \
                    $(shell pkg-config --libs openblas libcurl) -lstdc++ -lm -pthread
.PHONY: bench-request
all: bench-request
build/bench/bench_request: bench/bench_request.c bench/stats.h build/libsrv.a build/libnncore.a build/relud
	@mkdir -p $(dir $@)
	$(CC) $(REQ_BENCH_CFLAGS) -o $@ $< $(REQ_BENCH_LIBS)
build/relud: $(wildcard server/*.c server/*.cc server/*.h core/*.c core/*.h config/*.c config/*.h)
	$(MAKE) --no-print-directory build/relud
bench-request: build/bench/bench_request
	build/bench/bench_request

# ---- JSON: the reader and writer on float32 tensors vs cJSON, converter ceilings ------
JSON_BENCH_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O3 -g -Wall -Wextra \
                     -Werror -I. $(shell pkg-config --cflags libcjson)
JSON_BENCH_LIBS   := build/libsrv.a build/libnncore.a $(shell pkg-config --libs libcjson) \
                     -lstdc++ -lm -pthread
.PHONY: bench-json
all: bench-json
build/bench/bench_json: bench/bench_json.c build/libsrv.a build/libnncore.a
	@mkdir -p $(dir $@)
	$(CC) $(JSON_BENCH_CFLAGS) -o $@ $< $(JSON_BENCH_LIBS)
bench-json: build/bench/bench_json
	build/bench/bench_json

# ---- batching: dynamic batching on vs off under N closed-loop clients, vs 64/t64 ----------
# A 336 MB MLP written to a temp dir, one daemon at a time; about 2 minutes on 2 cores.
# BENCH_BATCH_ARGS passes options (--clients 1,64 --seconds 2 --format binary ...).
.PHONY: bench-batch
all: bench-batch
build/bench/bench_batch: bench/bench_batch.c bench/stats.h build/libsrv.a build/libnncore.a \
                         build/relud
	@mkdir -p $(dir $@)
	$(CC) $(REQ_BENCH_CFLAGS) -o $@ $< $(REQ_BENCH_LIBS)
bench-batch: build/bench/bench_batch
	build/bench/bench_batch $(BENCH_BATCH_ARGS)

# ---- ONNX: a 10 M-parameter MLP loaded from NAME.onnx vs the same weights as safetensors ---
# (the issue's ceiling: 1.5x), and one pass of each (the same engine). It writes the .onnx
# file with the generated onnx.pb-c.h (made with build/libsrv.a).
ONNX_BENCH_LIBS := build/libsrv.a build/libcfg.a build/libnncore.a \
                   $(shell pkg-config --libs openblas libprotobuf-c libmicrohttpd zlib gnutls) \
                   -lstdc++ -lm -pthread
.PHONY: bench-onnx
all: bench-onnx
build/bench/bench_onnx: bench/bench_onnx.c bench/stats.h build/libsrv.a build/libnncore.a \
                        build/relud
	@mkdir -p $(dir $@)
	$(CC) $(CORE_BENCH_CFLAGS) -Ibuild/gen -o $@ $< $(ONNX_BENCH_LIBS)
bench-onnx: build/bench/bench_onnx
	build/bench/bench_onnx

# ---- training: inference latency while a training job runs (and a SCHED_IDLE control) --
# About 4 minutes on 2 cores; DUR, RUNS and CONNS (bench/train.sh) shorten it.
.PHONY: bench-train
all: bench-train
bench-train: build/relud
	bench/train.sh

# ---- training steps: relud's trainer vs PyTorch 1.13 (issue 15: >= 1.0x torch) -----------
# Adam on an MLP 784-256-256-10, batch 64, float32: steps/s at 1 and nproc threads, torch served
# over pipes (bench/torch_train.py) and alternated round by round; a sanity line compares the
# two's losses from the same weights and data. About 15 s; BENCH_TRAIN_STEPS_ARGS passes
# options (--rounds 7 --steps 50 --threads T --no-torch).
.PHONY: bench-train-steps
all: bench-train-steps
build/bench/bench_train: bench/bench_train.c bench/stats.h bench/torch_child.h build/libnncore.a build/libsrv.a \
                         core/train.h core/optim.h server/blas.h
	@mkdir -p $(dir $@)
	$(CC) $(CORE_BENCH_CFLAGS) -o $@ $< $(CORE_BENCH_LIBS)
bench-train-steps: build/bench/bench_train
	build/bench/bench_train bench $(BENCH_TRAIN_STEPS_ARGS)
