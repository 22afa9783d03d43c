"""Messages for a model name that finds nothing. ``from_pretrained`` looks in three places, and the message answers
for each: is it a local folder (and is there one with a similar name)? a model shipped in the package (the nearest
shipped name)? a Hub repo: was the Hub asked at all (``HF_HUB_OFFLINE``, ``local_files_only``), what did it say
(no such repo or private, no such revision, unreachable), and what does the local Hub cache hold of the repo?

Only the Hub's "not found" and "not reachable" errors are explained here; any other error passes through unchanged.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

_COMMIT = re.compile(r"[0-9a-f]{40}")
_MAX_SIBLINGS = 1000
"""Folders beside a missing path looked at for a similar name (a bound for huge folders; this is an error path)."""
RETIRED_MODELS = {
    "sim-synth": "no longer shipped (trained on synthetic speech only); it lives in the source repository: load it "
                 "by path, from_pretrained('training/models/sim-synth')",
}
"""Names of models the package used to ship, and where each went."""


@dataclass(frozen=True)
class Lookup:
    """What was asked for.

    Attributes:
        name: the name, path or repo id given to ``from_pretrained``.
        revision: the Hub revision asked for (``None``: the default branch).
        cache_dir: the Hub cache asked for (``None``: ``huggingface_hub.constants.HF_HUB_CACHE``).
        local_files_only: whether the caller forbade requests.
        files: the files needed, relative to the repo's root (checked in the cached snapshot).
        shipped: the names of the models shipped in the package.
    """

    name: str
    revision: str | None
    cache_dir: str | Path | None
    local_files_only: bool
    files: tuple[str, ...]
    shipped: Collection[str]


def explain_hub_error(error: Exception, lookup: Lookup) -> str | None:
    """The message for a Hub error that means the name finds no model, or ``None`` for any other error."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub = f"the Hub ({constants.ENDPOINT})"
    if isinstance(error, HFValidationError):
        return f"{nowhere(lookup)}, and not a valid Hub repo id ({error})"
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)) and _offline_reason(lookup):
        return _offline(lookup)
    if isinstance(error, GatedRepoError):
        return (f"{lookup.name}: {hub} holds this repo, but it is gated: accept its conditions on its page, then "
                "use a token (token=, HF_TOKEN or `hf auth login`)")
    if isinstance(error, RevisionNotFoundError):
        return f"{lookup.name}: the Hub repo has no branch, tag or commit {lookup.revision!r}"
    if isinstance(error, RepositoryNotFoundError) or {_http_status(error), _http_status(error.__cause__)} & {401, 404}:
        return (f"{nowhere(lookup)}, and {hub} has no repo {lookup.name!r} that you can see: check the id; a private "
                "repo needs a token (token=, HF_TOKEN or `hf auth login`)")
    if isinstance(error, LocalEntryNotFoundError):
        cause = error.__cause__
        why = "answered with an error" if isinstance(cause, HfHubHTTPError) else "could not be reached"
        detail = f" ({type(cause).__name__}: {_first_line(cause)})" if cause is not None else ""
        prefix = f"{lookup.name}:" if _is_cached(lookup) else f"{nowhere(lookup)}, and"
        return f"{prefix} {hub} {why}{detail}; {cache_state(lookup)}"
    return None


def nowhere(lookup: Lookup) -> str:
    """``NAME: not a local folder (...), not a model shipped in the package (did you mean ...?)``."""
    folder = near_folder(lookup.name)
    folder_hint = f" (did you mean the folder {folder!r}?)" if folder else ""
    shipped = sorted(lookup.shipped)
    near = difflib.get_close_matches(lookup.name, shipped, n=1)
    if lookup.name in RETIRED_MODELS:
        near_hint = f"{RETIRED_MODELS[lookup.name]}; "
    else:
        near_hint = f"did you mean {near[0]!r}? " if near else ""
    shipped_hint = near_hint + f"shipped: {', '.join(shipped) or 'none'}"
    return f"{lookup.name}: not a local folder{folder_hint}, not a model shipped in the package ({shipped_hint})"


def near_folder(name: str) -> str | None:
    """A model folder (one holding a ``config.json``) beside where ``name`` would be, with the most similar name."""
    path = Path(name).expanduser()
    parent = path.parent
    if not path.name or not parent.is_dir():
        return None
    try:
        siblings = [p for p in itertools.islice(parent.iterdir(), _MAX_SIBLINGS) if (p / "config.json").is_file()]
    except OSError:
        return None
    near = difflib.get_close_matches(path.name, [p.name for p in siblings], n=1)
    return str(parent / near[0]) if near else None


def cache_state(lookup: Lookup) -> str:
    """What the Hub cache holds of the repo: nothing, other revisions (named), or the revision without some of the
    needed files; read from the cache's folders (``refs/``, ``snapshots/``), without a request."""
    root, repo = _cache_folders(lookup)
    snapshots = _cached_snapshots(repo)
    if not snapshots:
        return f"the cache ({root}) holds nothing of {lookup.name!r}"
    refs = _cached_refs(repo)
    revision = lookup.revision or "main"
    commit = revision if _COMMIT.fullmatch(revision) else refs.get(revision)
    if commit is None or commit not in snapshots:
        return f"the cache ({root}) holds {lookup.name!r} at {_labels(refs, snapshots)}, but not at {revision!r}"
    missing = [name for name in lookup.files if not (repo / "snapshots" / commit / name).is_file()]
    held = f"the cache ({root}) holds {lookup.name!r} at {revision!r} (commit {commit[:12]})"
    return f"{held}, but not its {', '.join(missing)}" if missing else held


def _offline(lookup: Lookup) -> str:
    reason = _offline_reason(lookup)
    prefix = lookup.name if _is_cached(lookup) else f"{nowhere(lookup)}, and not in the Hub cache"
    undo = "unset HF_HUB_OFFLINE" if reason.startswith("HF_HUB_OFFLINE") else "drop local_files_only=True"
    return f"{prefix}: {reason}, so the Hub was not asked, and {cache_state(lookup)}; {undo} to download it"


def _offline_reason(lookup: Lookup) -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return "local_files_only=True" if lookup.local_files_only else ""


def _cache_folders(lookup: Lookup) -> tuple[Path, Path]:
    """The Hub cache's root and the repo's folder in it (``models--ORG--NAME``)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(lookup.cache_dir or constants.HF_HUB_CACHE)
    return root, root / repo_folder_name(repo_id=lookup.name, repo_type="model")


def _is_cached(lookup: Lookup) -> bool:
    """Whether the cache holds any revision of the repo (then its name is right, whatever else is wrong)."""
    return bool(_cached_snapshots(_cache_folders(lookup)[1]))


def _cached_snapshots(repo: Path) -> list[str]:
    """The commits the cache holds a snapshot folder of."""
    return sorted(p.name for p in (repo / "snapshots").glob("*") if p.is_dir())


def _cached_refs(repo: Path) -> dict[str, str]:
    """Branch or tag name -> commit, from the cache's ``refs/`` files (``refs/pr/1`` is named ``pr/1``)."""
    refs_dir = repo / "refs"
    refs = {}
    for path in sorted(refs_dir.rglob("*")):
        if path.is_file():
            refs[path.relative_to(refs_dir).as_posix()] = path.read_text(encoding="utf-8").strip()
    return refs


def _labels(refs: dict[str, str], snapshots: list[str]) -> str:
    """``main (1a2b3c4d5e6f), v0 (...)``, then commits no ref names."""
    named = [f"{ref} ({commit[:12]})" for ref, commit in refs.items() if commit in snapshots]
    unnamed = [commit[:12] for commit in snapshots if commit not in refs.values()]
    return ", ".join(named + unnamed)


def _http_status(error: BaseException | None) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]
