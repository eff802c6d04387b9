"""Drive the real docker CLI against an engined."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin") or "/usr/local/bin/docker"


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.strip()

    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]


class DockerCLI:
    def __init__(self, host: str, config_dir: Path | None = None, binary: str = DOCKER) -> None:
        self.host = host
        self.binary = binary  # another docker CLI (Debian's 20.10 beside 28) for the same stories
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0", "DOCKER_CLI_HINTS": "false"}
        self.env.pop("DOCKER_CONTEXT", None)
        if config_dir is not None:
            self.env["DOCKER_CONFIG"] = str(config_dir)

    def run(
        self, *args: str, input: bytes | str | None = None, timeout: float = 120, check: bool = False, text: bool = True
    ) -> Result:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run([self.binary, *args], input=data, capture_output=True, env=self.env, timeout=timeout)
        result = Result(
            list(args), proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n{result.stderr}{result.stdout}")
        return result

    def __call__(self, *args: str, **kwargs: object) -> Result:
        """Run and require success."""
        return self.run(*args, check=True, **kwargs)  # type: ignore[arg-type]

    def fails(self, *args: str, **kwargs: object) -> Result:
        result = self.run(*args, **kwargs)  # type: ignore[arg-type]
        assert result.returncode != 0, f"docker {' '.join(args)} should have failed:\n{result.stdout}"
        return result

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen([self.binary, *args], env=self.env, **kwargs)  # type: ignore[call-overload]
