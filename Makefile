# libgpumat - portable OpenCL matrix operations for C.
#
#   make                 library (shared + static), examples, gpumat.pc
#   make demo            the 1000x1000 multiply demo on the best device present
#   make check           the test suite (cmocka, on whatever OpenCL device exists)
#   make check-asan      the test suite under AddressSanitizer + UBSan
#   make check-portability  compile every kernel variant for AMD and Intel GPUs
#   make check-docs      every public function documented (header, docs/api.md, man page)
#   make install [PREFIX=/usr/local] [DESTDIR=...]; make uninstall; make clean
#
# `make demo` and `make check` first make sure the system packages they need
# are installed (tools/ensure-deps).

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR     ?= $(PREFIX)/share/man
DESTDIR    ?=

VERSION_HEADER := include/gpumat.h
MAJOR   := $(shell sed -n 's/^\#define GPUMAT_VERSION_MAJOR \([0-9]*\).*/\1/p' $(VERSION_HEADER))
MINOR   := $(shell sed -n 's/^\#define GPUMAT_VERSION_MINOR \([0-9]*\).*/\1/p' $(VERSION_HEADER))
PATCH   := $(shell sed -n 's/^\#define GPUMAT_VERSION_PATCH \([0-9]*\).*/\1/p' $(VERSION_HEADER))
VERSION := $(MAJOR).$(MINOR).$(PATCH)

B ?= build
SANITIZE ?=

CC      ?= cc
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= $(OPT)
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) \
              $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
ALL_LDFLAGS := $(LDFLAGS) $(if $(SANITIZE),-fsanitize=$(SANITIZE))
LIBS    := -lOpenCL -lpthread -ldl -lm

LIB_SRC := $(wildcard lib/*.c)
CL_SRC  := $(sort $(wildcard cl/*.cl))
LIB_OBJ := $(LIB_SRC:lib/%.c=$(B)/obj/%.o) $(B)/obj/embedded_kernels.o
SONAME  := libgpumat.so.$(MAJOR)
SHARED  := $(B)/libgpumat.so.$(VERSION)
STATIC  := $(B)/libgpumat.a
PC      := $(B)/gpumat.pc

EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))
TESTS    := $(patsubst tests/%.c,$(B)/tests/%,$(filter-out tests/test_util.c,$(wildcard tests/test_*.c)))

.PHONY: all lib examples tests demo bench check check-run check-docs check-asan check-tsan \
        check-portability deps-build deps-demo deps-check deps-bench install uninstall clean
.DELETE_ON_ERROR:

all: lib examples

lib: $(SHARED) $(B)/$(SONAME) $(B)/libgpumat.so $(STATIC) $(PC)

examples: $(EXAMPLES)

tests: $(TESTS)

# ---- library --------------------------------------------------------------

$(B)/obj/%.o: lib/%.c | $(B)/obj
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -Iinclude -Ilib -MMD -MP -c $< -o $@

# The kernels are compiled into the library from a generated C file.
$(B)/tools/embed_cl: tools/embed_cl.c | $(B)/tools
	$(CC) -std=c11 -O1 $(WARN) $< -o $@

$(B)/gen/embedded_kernels.c: $(CL_SRC) $(B)/tools/embed_cl | $(B)/gen
	$(B)/tools/embed_cl $@ $(CL_SRC)

$(B)/obj/embedded_kernels.o: $(B)/gen/embedded_kernels.c | $(B)/obj
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -Iinclude -Ilib -MMD -MP -c $< -o $@

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined $(ALL_LDFLAGS) $^ $(LIBS) -o $@

$(B)/$(SONAME) $(B)/libgpumat.so: $(SHARED)
	ln -sf $(notdir $(SHARED)) $@

$(STATIC): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# Directories under PREFIX are written relative to ${prefix}, so that
# pkg-config --define-prefix / --define-variable=prefix=... can relocate.
PC_LIBDIR     := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))

$(PC): pkgconfig/gpumat.pc.in $(VERSION_HEADER) Makefile | $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# ---- examples and tests ---------------------------------------------------

# Examples link the shared library as a user's program would; the rpath
# lets them run from the build tree.
$(B)/examples/%: examples/%.c $(SHARED) $(B)/$(SONAME) $(B)/libgpumat.so | $(B)/examples
	$(CC) $(ALL_CFLAGS) -Iinclude -MMD -MP $< $(EXTRA_SRC) -o $@ $(ALL_LDFLAGS) -L$(B) -lgpumat \
	    -Wl,-rpath,'$$ORIGIN/..' $(LIBS)

$(B)/tests/%: tests/%.c tests/test_util.c tests/test_util.h $(STATIC) | $(B)/tests
	$(CC) $(ALL_CFLAGS) -Iinclude -Ilib -MMD -MP $< tests/test_util.c $(EXTRA_SRC) -o $@ \
	    $(ALL_LDFLAGS) $(STATIC) -lcmocka $(LIBS)

# test_tune runs the tuner built beside it.
$(B)/tests/test_tune: $(B)/examples/gpumat-tune

# The MLP example and its test share the data loader and the network code in
# examples/common/ (not programs, so the examples rule does not see them).
# `private`: the library these targets depend on must not inherit -lz.
MLP_COMMON := $(wildcard examples/common/*.c)
$(B)/examples/mlp $(B)/tests/test_mlp: private EXTRA_SRC := $(MLP_COMMON)
$(B)/examples/mlp $(B)/tests/test_mlp: private LIBS += -lz
$(B)/examples/mlp $(B)/tests/test_mlp: $(MLP_COMMON) $(wildcard examples/common/*.h)

$(B) $(B)/obj $(B)/gen $(B)/tools $(B)/examples $(B)/tests:
	mkdir -p $@

# ---- running --------------------------------------------------------------

deps-build:
	@tools/ensure-deps build
deps-demo:
	@tools/ensure-deps demo
deps-check:
	@tools/ensure-deps check
deps-bench:
	@tools/ensure-deps bench

demo: deps-demo
	$(MAKE) --no-print-directory all
	$(B)/examples/devices
	$(B)/examples/matmul

# Speed, side by side with CLBlast and copy bandwidth (not a test): the
# table on the terminal, the same figures as CSV in BENCH_CSV.
BENCH_ARGS ?=
BENCH_CSV ?= $(B)/bench.csv
bench: deps-bench
	$(MAKE) --no-print-directory all
	$(B)/examples/gpumat-bench --csv $(BENCH_CSV) $(BENCH_ARGS)

# Runs every test binary; the device tests a second time with two PoCL
# devices so that device choice by index and name is exercised.
check-run: tests
	@tools/run-tests $(B)/tests $(TESTS)

check: deps-check
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory check-run
	$(MAKE) --no-print-directory check-docs
	$(MAKE) --no-print-directory check-tsan

# Every GPUMAT_API function has a doc comment, a docs/api.md entry and a man page.
check-docs:
	@tools/check-docs

# Drivers that dlopen with RTLD_DEEPBIND (Intel's) cannot load under the
# sanitizers' interceptors, so sanitizer runs use PoCL alone.
SANITIZER_ENV := OCL_ICD_VENDORS=/etc/OpenCL/vendors/pocl.icd

check-asan: deps-check
	$(SANITIZER_ENV) $(MAKE) --no-print-directory B=build/asan SANITIZE=address,undefined OPT="-O1 -g" check-run

# The tests that run library code on several threads, under ThreadSanitizer:
# callers' threads, the copy threads of staged transfers, and trims beside
# another thread's products.
TSAN_TESTS = build/tsan/tests/test_threads build/tsan/tests/test_transfer \
             build/tsan/tests/test_scratch
check-tsan: deps-check
	$(MAKE) --no-print-directory B=build/tsan SANITIZE=thread OPT="-O1 -g" $(TSAN_TESTS)
	@$(SANITIZER_ENV) tools/run-tests build/tsan/tests $(TSAN_TESTS)

check-portability: deps-check $(B)/tools/print_profiles $(B)/gen/embedded_kernels.c
	@tools/ensure-deps portability
	tools/check-portability $(B)/tools/print_profiles $(CL_SRC)

$(B)/tools/print_profiles: tools/print_profiles.c $(STATIC) | $(B)/tools
	$(CC) $(ALL_CFLAGS) -Iinclude -Ilib $^ -o $@ $(ALL_LDFLAGS) $(LIBS)

# ---- install --------------------------------------------------------------

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/gpumat.h $(DESTDIR)$(INCLUDEDIR)/gpumat.h
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libgpumat.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(PC) $(DESTDIR)$(PKGCONFIGDIR)/gpumat.pc
	install -d $(DESTDIR)$(MANDIR)/man3
	install -m 644 docs/man/*.3 $(DESTDIR)$(MANDIR)/man3/

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/gpumat.h $(DESTDIR)$(LIBDIR)/libgpumat.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libgpumat.so \
	      $(DESTDIR)$(LIBDIR)/libgpumat.a $(DESTDIR)$(PKGCONFIGDIR)/gpumat.pc \
	      $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(wildcard docs/man/*.3)))

clean:
	rm -rf build

-include $(wildcard $(B)/obj/*.d $(B)/examples/*.d $(B)/tests/*.d)
