"""Start a real `beacon serve` process on a free loopback port and mint its development tokens.

The server gets its own temporary data folder, so each test session starts from an empty
database and a new signing key. Its standard error is read continuously by a thread, because a
full pipe would block the server, and the lines are kept to explain a failed start.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

LISTENING_LINE = re.compile(r"listening on (http://\S+)")
FINISHED_LINE = re.compile(r"request finished status=(\d+)")

# Seconds to wait for the `listening on` line, which the server prints once its port is bound.
START_TIMEOUT_S = 30
# Seconds a SIGTERM gets before the process is killed.
STOP_TIMEOUT_S = 10


class BeaconServer:
    """A running `beacon serve` process and the data folder whose key signs its tokens."""

    def __init__(self, binary: Path, data_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        """Start `beacon serve` with `data_dir` and `extra_args`; raise if it does not listen."""
        self.binary = binary
        self.data_dir = data_dir
        self.log_lines: list[str] = []
        self._listening = threading.Event()
        self._base_url: str | None = None
        # The server reads BEACON_* variables as option defaults, so the caller's own settings
        # (such as BEACON_AUTH or BEACON_DATABASE_URL) are left out to keep the tests hermetic.
        # RUST_LOG=info makes it log every request's status, which count_responses() reads.
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("BEACON_")
        }
        environment["RUST_LOG"] = "info"
        self._process = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(data_dir),
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self._log_reader = threading.Thread(target=self._read_log, daemon=True)
        self._log_reader.start()

        if not self._listening.wait(START_TIMEOUT_S) or self._base_url is None:
            self.stop()
            log = "".join(self.log_lines)
            raise RuntimeError(
                f"beacon serve printed no 'listening on' line within {START_TIMEOUT_S} s "
                f"(exit status {self._process.poll()}); its log:\n{log}"
            )

    @property
    def base_url(self) -> str:
        """The server's root, such as `http://127.0.0.1:41234`, without a trailing slash."""
        assert self._base_url is not None
        return self._base_url

    @property
    def beta_url(self) -> str:
        """The Graph beta service root that the SDK's request adapter takes as its base URL."""
        return f"{self.base_url}/beta"

    def mint_token(
        self,
        tenant_id: str,
        scopes: tuple[str, ...] = ("DeviceManagementConfiguration.ReadWrite.All",),
    ) -> str:
        """Run `beacon token` for `tenant_id` with `scopes` and return the bearer token."""
        command = [
            str(self.binary),
            "token",
            "--data-dir",
            str(self.data_dir),
            "--tenant",
            tenant_id,
        ]
        for scope in scopes:
            command += ["--scope", scope]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(
                f"beacon token failed with exit status {result.returncode}: {result.stderr}"
            )
        return result.stdout.strip()

    def count_responses(self, status: int) -> int:
        """Return how many responses with `status` the server has logged so far."""
        return sum(
            1
            for line in list(self.log_lines)
            if (match := FINISHED_LINE.search(line)) and int(match.group(1)) == status
        )

    def stop(self) -> None:
        """Stop the server with SIGTERM, and kill it if it has not exited in time."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        # The reader sees the end of the pipe once the process has exited.
        self._log_reader.join(STOP_TIMEOUT_S)
        if self._process.stderr is not None:
            self._process.stderr.close()

    def _read_log(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self.log_lines.append(line)
            match = LISTENING_LINE.search(line)
            if match and not self._listening.is_set():
                self._base_url = match.group(1).rstrip("/")
                self._listening.set()
        # The process exited: wake a start that is still waiting, so that it fails at once.
        self._listening.set()
