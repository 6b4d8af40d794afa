# SPDX-License-Identifier: GPL-2.0 OR MIT
#
# The entry points a newcomer types. Everything is done by the xtask crate (cargo xtask ...);
# each target sets up what is missing first.

CARGO ?= cargo

.PHONY: run test setup build kunit qtest vm-test clean

run:
	$(CARGO) xtask run

test:
	$(CARGO) xtask test

setup:
	$(CARGO) xtask setup

build:
	$(CARGO) xtask build

kunit:
	$(CARGO) xtask kunit

qtest:
	$(CARGO) xtask qtest

vm-test:
	$(CARGO) xtask vm-test

clean:
	$(CARGO) xtask clean
