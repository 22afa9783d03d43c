"""The run's logs in OUT_DIR: ``manifest.jsonl`` (one line per output written, appended across runs) and
``failures.jsonl`` (the files that failed in the latest run). Sharded runs add ``-shard{I}of{N}`` to both names
so that concurrent shards never write to the same log."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .paths import display
from .plan import Failure
from .settings import Shard


class RunLog:
    """Appends manifest and failure lines; each line is flushed as soon as it is written."""

    def __init__(self, out_dir: Path, shard: Shard):
        self.out_dir = out_dir
        self.manifest_path = out_dir / f"manifest{shard.suffix}.jsonl"
        self.failures_path = out_dir / f"failures{shard.suffix}.jsonl"
        self.shard = shard
        self._manifest = None
        self._failures = None

    def open(self) -> None:
        """Start logging: the manifest is appended to (after mending a line cut by a kill), failures restart."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.manifest_path.exists() and self.manifest_path.stat().st_size:
            with open(self.manifest_path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                cut = handle.read(1) != b"\n"
        else:
            cut = False
        self._manifest = open(self.manifest_path, "a", encoding="utf-8")  # noqa: SIM115 -- closed in close()
        if cut:
            self._manifest.write("\n")
        self._failures = open(self.failures_path, "w", encoding="utf-8")  # noqa: SIM115 -- closed in close()

    def close(self) -> None:
        for handle in (self._manifest, self._failures):
            if handle is not None:
                handle.close()

    def recorded(self) -> set[tuple[str, str]]:
        """``(output, fingerprint)`` pairs already in the manifest (lines cut by a kill are ignored)."""
        return {(entry.get("output"), entry.get("fingerprint")) for entry in read_jsonl(self.manifest_path)}

    def output_written(self, output: Path, metadata: dict[str, str], size_bytes: int, status: str) -> None:
        """Log an output: ``status`` is ``written`` (computed now) or ``present`` (complete already, not logged)."""
        module_info = json.loads(metadata["json"])["module_info"]
        entry = {"output": self.relative(output), "source": metadata["source"],
                 "fingerprint": metadata["fingerprint"], "status": status,
                 "duration_s": float(metadata["source_duration_s"]),
                 "frames": {str(m["index"]): m["frames"] for m in module_info}, "bytes": size_bytes,
                 "shard": str(self.shard), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _append(self._manifest, entry)

    def failure(self, failure: Failure) -> None:
        _append(self._failures, failure.as_dict())

    def relative(self, output: Path) -> str:
        return display(output.relative_to(self.out_dir).as_posix())


def read_jsonl(path: Path) -> list[dict]:
    """The complete JSON lines of ``path`` (an unparsable line, such as one cut by a kill, is skipped)."""
    if not path.exists():
        return []
    entries = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def _append(handle, entry: dict) -> None:
    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    handle.flush()
