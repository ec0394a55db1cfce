# libFuzzer builds (clang, ASan + UBSan) of the request path (fuzz_request: handlers called
# directly) and of the HTTP edge (fuzz_http: raw bytes to the real daemon). `make fuzz` runs
# each for half of FUZZ_SECONDS on a copy of its seed corpus (tests/fuzz/corpus, corpus_http).
FUZZ_SECONDS ?= 60
B := build/fuzz
CC := clang
CXX := clang++
PKGS := libmicrohttpd libcjson openblas
SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g $(SAN) -I. \
          $(shell pkg-config --cflags $(PKGS))
CXXFLAGS := -std=c++17 -O1 -g $(SAN) -fno-exceptions -fno-rtti -I.
SRC := $(wildcard core/*.c config/*.c) $(filter-out server/main.c,$(wildcard server/*.c))
OBJ := $(patsubst %.c,$(B)/%.o,$(SRC)) $(patsubst %.cc,$(B)/%.o,$(wildcard server/*.cc))

run: $(B)/fuzz_request $(B)/fuzz_http
	@rm -rf $(B)/corpus $(B)/corpus_http && mkdir -p $(B)/corpus $(B)/corpus_http
	@cp tests/fuzz/corpus/* $(B)/corpus/ && cp tests/fuzz/corpus_http/* $(B)/corpus_http/
	@half=$$(( $(FUZZ_SECONDS) / 2 )); p=0; f=0; \
	  echo "fuzz: request parsing + validation for $$half s"; \
	  $(B)/fuzz_request -max_total_time=$$half -max_len=16384 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus 2>&1 | tail -n 25; \
	  if [ $${PIPESTATUS[0]} -eq 0 ]; then p=$$((p+1)); else f=$$((f+1)); fi; \
	  echo "fuzz: the HTTP edge (raw requests to the daemon) for $$half s"; \
	  $(B)/fuzz_http -max_total_time=$$half -max_len=8192 -timeout=20 \
	    -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus_http 2>&1 | tail -n 25; \
	  if [ $${PIPESTATUS[0]} -eq 0 ]; then p=$$((p+1)); else f=$$((f+1)); fi; \
	  echo "$$p passed, $$f failed"; [ $$f -eq 0 ]

SHELL := /bin/bash

$(B)/fuzz_request: tests/fuzz/fuzz_request.c $(OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(shell pkg-config --libs $(PKGS)) -lstdc++ -lm -pthread
$(B)/fuzz_http: tests/fuzz/fuzz_http.c $(OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(shell pkg-config --libs $(PKGS)) -lstdc++ -lm -pthread

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"; $(CC) $(CFLAGS) -c $< -o $@
$(B)/%.o: %.cc
	@mkdir -p $(dir $@)
	@echo "CXX $<"; $(CXX) $(CXXFLAGS) -c $< -o $@
