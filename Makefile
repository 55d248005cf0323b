# The two commands the README starts with. Both install what they need first.
.PHONY: demo test build build-asan package fuzz bench format tidy clean

JOBS ?= 2
# ccache hits across clones (CI builds a fresh clone on the same machine): hash paths relative
# to the checkout, not absolute.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

build:
	scripts/install-deps
	cmake --preset default >/dev/null
	cmake --build --preset default -j $(JOBS)

build-asan:
	scripts/install-deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

# Builds, starts a scratch PostgreSQL and dbwarden in front of it, drives psql and pgbench
# through the relay, prints what was audited, and stops everything.
demo: build
	scripts/demo

# The Debian package build/default/dbwarden_<version>_amd64.deb, checked by lintian (fails on
# errors). `make test` runs the same script in tests/packaging (packaging/README.md).
package: build
	packaging/make-deb build/default

# Every test: unit, integration (real PostgreSQL and clients) and fuzz-corpus replays in the
# default build, then the unit suite under ASan+UBSan.
test: build build-asan
	ctest --preset default -j 1
	ctest --preset asan -j $(JOBS)

# libFuzzer targets (clang); run one with e.g. build/fuzz/tests/fuzz/fuzz_frontend -max_total_time=60
fuzz:
	scripts/install-deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)

bench: build
	bench/relay-vs-direct

format:
	find agent userspace policy tests bench bpf -name '*.cc' -o -name '*.h' -o -name '*.c' | xargs clang-format -i

tidy: build
	find agent userspace policy -name '*.cc' | xargs clang-tidy -p build/default --quiet

clean:
	rm -rf build
