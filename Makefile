# engine: `make run` starts the daemon with its defaults; `make test` runs the whole suite.
# Both install what they need first (Debian packages, then a .venv with every distribution editable).
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
PIP := $(VENV)/bin/pip
# Debian packages engine and its tests need. python3-btrfsutil and python3-systemd are only
# importable from Debian's python3, hence a venv made from /usr/bin/python3 with system site-packages.
# docker-compose (v1, with its own docker-py) is for the compose interop test; it Recommends docker.io,
# which --no-install-recommends keeps out (installing docker.io would start a real dockerd).
# etcd-server/etcd-client are the overlay driver's cluster store in its tests, which start their own
# etcd: a policy-rc.d (exit 101) is put in place for the install when the machine has none, so that
# installing etcd-server never starts a system etcd on 2379, and the unit it enables is disabled again
# (no etcd at the next boot either) when this install is what brought etcd-server.
APT_PACKAGES := python3 python3-venv python3-dev gcc make runc busybox-static iptables nftables \
	iproute2 btrfs-progs python3-btrfsutil zfs-fuse rsyslog rsyslog-gnutls python3-systemd uidmap rootlesskit slirp4netns fuse-overlayfs tini kmod libc6-dev xfsprogs zstd openssl procps util-linux \
	docker-compose docker-registry apache2-utils python3-jsonschema etcd-server etcd-client
# only for `make test-guest-devicemapper` (a qemu guest with a kernel that has dm-thin)
GUEST_APT_PACKAGES := qemu-system-x86 thin-provisioning-tools
DISTRIBUTIONS := core testkit $(sort $(wildcard plugins/*))
STAMP := $(VENV)/.installed
SHIM := $(VENV)/bin/engine-shim
SHIM_SRC := core/src/engine/runtime/shim/engine-shim.c
# Debian's docker CLI 20.10 (client only, never docker.io's dockerd) for the two-CLI tests
DOCKER_2010 := $(VENV)/bin/docker-20.10

.PHONY: install system-packages guest-packages bytecode run test test-guest-devicemapper lint bench crash soak load clean install-systemd

install: system-packages $(STAMP) $(SHIM) $(DOCKER_2010) bytecode

# compile engine's sources ahead: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
# engined start would otherwise compile ~200 modules again (0.3 s of its start-up)
bytecode: $(STAMP)
	@$(VENV)/bin/python -m compileall -q -j 0 core/src testkit/src $(wildcard plugins/*/src) >/dev/null

# the per-container shim (C): static when libc.a is there (smallest RSS), else dynamic
$(SHIM): $(SHIM_SRC) | $(STAMP)
	gcc -O2 -Wall -static -s -o $@ $(SHIM_SRC) || gcc -O2 -Wall -s -o $@ $(SHIM_SRC)

$(DOCKER_2010): scripts/docker-cli-20.10 | $(STAMP)
	scripts/docker-cli-20.10 $@

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  rc=$$?; if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  case " $$missing " in *" etcd-server "*) systemctl disable etcd.service >/dev/null 2>&1 || \
	    rm -f /etc/systemd/system/multi-user.target.wants/etcd.service;; esac; \
	  exit $$rc; \
	fi

$(STAMP): $(addsuffix /pyproject.toml,$(DISTRIBUTIONS)) requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(addprefix -e ,$(DISTRIBUTIONS)) -r requirements-dev.txt
	touch $(STAMP)

# systemd units (contrib/systemd, as docker.service/docker.socket): engine.socket listens on
# /run/engine.sock, engine.service runs this checkout's engined with -H fd:// (Type=notify).
# DESTDIR stages them elsewhere (then no group is made and systemd is not told).
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
install-systemd: $(STAMP)
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	sed 's|/usr/local/bin/engined|$(abspath $(VENV))/bin/engined|' contrib/systemd/engine.service \
	  > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/engine.service
	install -m 644 contrib/systemd/engine.socket $(DESTDIR)$(SYSTEMD_UNIT_DIR)/engine.socket
	@if [ -z "$(DESTDIR)" ]; then \
	  getent group engine >/dev/null || groupadd --system engine; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	  echo "start with: systemctl enable --now engine.socket engine.service"; \
	fi

run: install
	$(VENV)/bin/engined

# the import contracts (pyproject.toml [tool.importlinter]) first: a broken layer fails fast
test: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

guest-packages:
	@$(MAKE) --no-print-directory system-packages APT_PACKAGES="$(GUEST_APT_PACKAGES)"

# not part of `make test`: this kernel has no device-mapper, so the devicemapper driver is proven in
# a qemu TCG guest (Debian's kernel) that runs scripts/guest/devicemapper-check: the driver's tests,
# the storage conformance suite and the storage benchmark; results in benchmarks/results/
test-guest-devicemapper: install guest-packages
	scripts/guest/build
	scripts/guest/run scripts/guest/devicemapper-check

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# SIGKILLs engined at random instants under parallel load; checks the invariants after each restart
crash: install
	$(VENV)/bin/python scripts/crash_harness $(CRASH_ARGS)

# 2,000 run --rm and 1,000 exec cycles: daemon RSS, fds and threads must stay flat
soak: install
	$(VENV)/bin/python scripts/soak $(SOAK_ARGS)

# 100 concurrent API clients for 10 minutes: p50/p99 per request kind (--target: side by side)
load: install
	$(VENV)/bin/python scripts/load $(LOAD_ARGS)

bench: install
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV)
