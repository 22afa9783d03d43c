"""Peak resident memory of ``sim-extract`` on one long file (default one hour), which it processes in chunks.

    python -m training.benchmarks.memory [--hours 1 | --seconds S] [--chunk-seconds C] [--what mean] [--bf16]
                                         [--out FILE.json]

Runs ``sim-extract`` with its defaults (or the given ``--chunk-seconds`` and ``--what``) in a subprocess on a FLAC
file of speech-like audio and samples, every 50 ms, the summed proportional set size (PSS) of that process and its
children (the decoding worker); also reports the kernel's peak resident set of the largest single process of that
run (``ru_maxrss`` from ``wait4``, so earlier children of the calling process do not count).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from training.benchmarks.common import machine, print_table, write_corpus, write_json


def tree_pss_bytes(pid: int) -> int:
    """Summed proportional set size (PSS: shared pages split between their users) of ``pid`` and its
    descendants, so pages shared by the forked decoding worker are not counted twice."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total


def peak_memory(command: list[str]) -> tuple[float, int, int]:
    """Run ``command``; wall seconds, the sampled peak of the tree's summed PSS and the largest ``ru_maxrss`` of the
    command's processes (its own rusage from ``wait4``: ``RUSAGE_CHILDREN`` would be the largest child the caller
    ever waited for)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_pss_bytes(process.pid))
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {process.returncode}")
    return time.perf_counter() - start, peak, usage.ru_maxrss * 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=None, help="the file's length (instead of --hours)")
    parser.add_argument("--chunk-seconds", type=float, default=None, help="sim-extract's (default: its default)")
    parser.add_argument("--what", default=None, help="sim-extract's, e.g. mean,logvar,sample (default: its default)")
    parser.add_argument("--model", default="sim-mix")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.seconds is not None:
        args.hours = args.seconds / 3600
    with tempfile.TemporaryDirectory() as scratch:
        [audio] = write_corpus(Path(scratch) / "in", [args.hours * 3600])
        command = [sys.executable, "-m", "smooth_infomax", str(audio.parent), str(Path(scratch) / "out"),
                   "--model", args.model, "--quiet"] + (["--bf16"] if args.bf16 else [])
        if args.chunk_seconds is not None:
            command += ["--chunk-seconds", str(args.chunk_seconds)]
        if args.what is not None:
            command += ["--what", args.what]
        seconds, tree_peak, process_peak = peak_memory(command)
        output_bytes = sum(p.stat().st_size for p in (Path(scratch) / "out").rglob("*") if p.is_file())
    result = {"machine": machine(), "hours": args.hours, "chunk_seconds": args.chunk_seconds, "what": args.what,
              "bf16": args.bf16, "wall_s": seconds, "audio_s_per_s": args.hours * 3600 / seconds,
              "peak_tree_pss_bytes": tree_peak, "peak_process_rss_bytes": process_peak, "output_bytes": output_bytes}
    print_table(["audio", "compute", "wall s", "audio-s/s", "peak PSS, all processes", "peak RSS, one process",
                 "features written"],
                [[f"{args.hours:g} h", "bfloat16" if args.bf16 else "float32", f"{seconds:.0f}",
                  f"{result['audio_s_per_s']:.0f}", f"{tree_peak / 2**20:.0f} MiB", f"{process_peak / 2**20:.0f} MiB",
                  f"{output_bytes / 2**30:.1f} GiB"]])
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
