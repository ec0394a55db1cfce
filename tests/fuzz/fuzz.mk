# libFuzzer builds (clang, ASan + UBSan) of the request path (fuzz_request: handlers called
# directly), of the HTTP edge (fuzz_http: raw bytes to the real daemon) and of the ONNX reader
# (fuzz_onnx: bytes as a NAME.onnx file) and of the multipart reader of model uploads
# (fuzz_multipart). `make fuzz` runs the first three for a third of FUZZ_SECONDS each on a copy
# of its seed corpus (tests/fuzz/corpus, corpus_http, corpus_onnx), then fuzz_multipart for
# 10 s more (a small parser: it saturates fast) on corpus_multipart.
FUZZ_SECONDS ?= 60
B := build/fuzz
CC := clang
CXX := clang++
PKGS := libmicrohttpd libcjson openblas zlib gnutls libprotobuf-c
SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g $(SAN) -I. \
          $(shell pkg-config --cflags $(PKGS))
CXXFLAGS := -std=c++17 -O1 -g $(SAN) -fno-exceptions -fno-rtti -I.
SRC := $(wildcard core/*.c config/*.c) $(filter-out server/main.c,$(wildcard server/*.c))
OBJ := $(patsubst %.c,$(B)/%.o,$(SRC)) $(patsubst %.cc,$(B)/%.o,$(wildcard server/*.cc)) \
       $(B)/gen/onnx.pb-c.o

run: $(B)/fuzz_request $(B)/fuzz_http $(B)/fuzz_onnx $(B)/fuzz_multipart
	@rm -rf $(B)/corpus $(B)/corpus_http $(B)/corpus_onnx $(B)/corpus_multipart
	@mkdir -p $(B)/corpus $(B)/corpus_http $(B)/corpus_onnx $(B)/corpus_multipart
	@cp tests/fuzz/corpus/* $(B)/corpus/ && cp tests/fuzz/corpus_http/* $(B)/corpus_http/
	@cp tests/fuzz/corpus_onnx/* $(B)/corpus_onnx/
	@cp tests/fuzz/corpus_multipart/* $(B)/corpus_multipart/
	@share=$$(( $(FUZZ_SECONDS) / 3 )); p=0; f=0; \
	  echo "fuzz: request parsing + validation for $$share s"; \
	  $(B)/fuzz_request -max_total_time=$$share -max_len=16384 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus 2>&1 | tail -n 25; \
	  if [ $${PIPESTATUS[0]} -eq 0 ]; then p=$$((p+1)); else f=$$((f+1)); fi; \
	  echo "fuzz: the HTTP edge (raw requests to the daemon) for $$share s"; \
	  $(B)/fuzz_http -max_total_time=$$share -max_len=8192 -timeout=20 \
	    -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus_http 2>&1 | tail -n 25; \
	  if [ $${PIPESTATUS[0]} -eq 0 ]; then p=$$((p+1)); else f=$$((f+1)); fi; \
	  echo "fuzz: the ONNX reader (bytes as a NAME.onnx file) for $$share s"; \
	  $(B)/fuzz_onnx -max_total_time=$$share -max_len=65536 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus_onnx 2>&1 | tail -n 25; \
	  if [ $${PIPESTATUS[0]} -eq 0 ]; then p=$$((p+1)); else f=$$((f+1)); fi; \
	  echo "fuzz: the multipart reader of model uploads for 10 s"; \
	  $(B)/fuzz_multipart -max_total_time=10 -max_len=4096 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus_multipart 2>&1 | tail -n 25; \
	  if [ $${PIPESTATUS[0]} -eq 0 ]; then p=$$((p+1)); else f=$$((f+1)); fi; \
	  echo "$$p passed, $$f failed"; [ $$f -eq 0 ]

SHELL := /bin/bash

$(B)/fuzz_request: tests/fuzz/fuzz_request.c $(OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(shell pkg-config --libs $(PKGS)) -lstdc++ -lm -pthread
$(B)/fuzz_http: tests/fuzz/fuzz_http.c $(OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(shell pkg-config --libs $(PKGS)) -lstdc++ -lm -pthread
$(B)/fuzz_onnx: tests/fuzz/fuzz_onnx.c $(OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(shell pkg-config --libs $(PKGS)) -lstdc++ -lm -pthread
$(B)/fuzz_multipart: tests/fuzz/fuzz_multipart.c $(B)/server/multipart.o $(B)/core/err.o
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^

# the ONNX decoder, generated from Debian's onnx.proto as in the Makefile
$(B)/gen/onnx/onnx.pb-c.c $(B)/gen/onnx/onnx.pb-c.h &: /usr/include/onnx/onnx.proto
	@mkdir -p $(B)/gen
	protoc-c --proto_path=/usr/include --c_out=$(B)/gen onnx/onnx.proto
$(B)/gen/onnx.pb-c.o: $(B)/gen/onnx/onnx.pb-c.c
	$(CC) $(CFLAGS) -I$(B)/gen -c $< -o $@
$(B)/server/onnx.o: $(B)/gen/onnx/onnx.pb-c.h
$(B)/server/onnx.o: CFLAGS += -I$(B)/gen

# -MMD: an object is rebuilt when a header it includes changes (a stale status.o against a
# longer status table once read past its end)
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"; $(CC) $(CFLAGS) -MMD -MP -c $< -o $@
$(B)/%.o: %.cc
	@mkdir -p $(dir $@)
	@echo "CXX $<"; $(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@
-include $(shell find $(B) -name '*.d' 2>/dev/null)
