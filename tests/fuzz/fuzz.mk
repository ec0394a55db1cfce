# libFuzzer build of the request path (clang, ASan + UBSan). `make fuzz` runs it for
# FUZZ_SECONDS on a copy of the seed corpus in tests/fuzz/corpus.
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

run: $(B)/fuzz_request
	@rm -rf $(B)/corpus && mkdir -p $(B)/corpus && cp tests/fuzz/corpus/* $(B)/corpus/
	@echo "fuzz: request parsing + validation for $(FUZZ_SECONDS) s"
	@$(B)/fuzz_request -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 \
	  -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus 2>&1 | tail -n 25; \
	  rc=$${PIPESTATUS[0]}; \
	  if [ $$rc -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi; exit $$rc

SHELL := /bin/bash

$(B)/fuzz_request: tests/fuzz/fuzz_request.c $(OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(shell pkg-config --libs $(PKGS)) -lstdc++ -lm -pthread

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"; $(CC) $(CFLAGS) -c $< -o $@
$(B)/%.o: %.cc
	@mkdir -p $(dir $@)
	@echo "CXX $<"; $(CXX) $(CXXFLAGS) -c $< -o $@
