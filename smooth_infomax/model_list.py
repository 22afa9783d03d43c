"""``sim-extract --list-models``: the models shipped in the package and the SIM models in the local Hub cache."""

from __future__ import annotations

import json
from pathlib import Path

from .hub import CONFIG_NAME, WEIGHTS_NAME, shipped_models


def model_list_lines(cache_dir: str | Path | None = None) -> list[str]:
    """Human-readable lines: shipped models (name and folder), then cached Hub models (repo, refs, commits)."""
    lines = ["shipped models (--model NAME):"]
    shipped = shipped_models()
    lines += [f"  {name}  {folder}" for name, folder in sorted(shipped.items())] or ["  (none)"]
    lines.append("cached Hub models (--model REPO [--revision R]), usable offline with HF_HUB_OFFLINE=1:")
    cached = cached_models(cache_dir)
    lines += [f"  {repo}  {', '.join(revisions)}" for repo, revisions in cached] or ["  (none)"]
    return lines


def cached_models(cache_dir: str | Path | None = None) -> list[tuple[str, list[str]]]:
    """``(repo_id, ["ref (commit)" or "commit", ...])`` for each cached model repo whose snapshot holds a SIM
    ``config.json`` and ``model.safetensors``."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 -- no cache folder yet, or an unreadable one: nothing cached
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        by_commit = sorted(repo.revisions, key=lambda r: r.commit_hash)
        revisions = [_label(rev) for rev in by_commit if _is_sim(rev.snapshot_path)]
        if revisions:
            found.append((repo.repo_id, revisions))
    return found


def _is_sim(snapshot: Path) -> bool:
    if not (snapshot / WEIGHTS_NAME).is_file():
        return False
    try:
        config = json.loads((snapshot / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("modules"), list)


def _label(revision) -> str:
    refs = ",".join(sorted(revision.refs))
    return f"{refs} ({revision.commit_hash[:12]})" if refs else revision.commit_hash[:12]
