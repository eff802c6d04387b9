"""Attached clients get every byte of a container's bulk output, in order, although the log copier
reads the same spool faster and acknowledges (deletes) the segments it has consumed."""

from __future__ import annotations

import subprocess

NAME_PREFIX = "cb-"

LINES = 100_000
PAD = "x" * 60
# ~6.7 MB: several 1 MiB spool segments, numbered so that a gap or a repeat shows
SCRIPT = f"seq 1 {LINES} | sed 's/$/ {PAD}/'"
EXPECTED = "".join(f"{i} {PAD}\n" for i in range(1, LINES + 1))


def test_start_attach_and_run_get_all_output(docker, busybox, cleanup, name):
    cleanup.append(name)
    docker("create", "--name", name, "--network", "none", busybox, "sh", "-c", SCRIPT)
    assert docker("start", "-a", name).stdout == EXPECTED
    assert docker("start", "-a", name).stdout == EXPECTED  # a second run of the same container
    cleanup.append(name + "-run")
    assert docker("run", "--name", name + "-run", "--network", "none", busybox, "sh", "-c", SCRIPT).stdout == EXPECTED
    assert docker("logs", name + "-run").stdout == EXPECTED


def test_attach_to_running_container_gets_all_later_output(docker, busybox, cleanup, name):
    cleanup.append(name)
    docker("run", "-d", "--name", name, "--network", "none", busybox, "sh", "-c", f"sleep 2; {SCRIPT}")
    attached = docker.popen("attach", name, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = attached.communicate(timeout=60)
    assert attached.returncode == 0, err
    assert out.decode() == EXPECTED
