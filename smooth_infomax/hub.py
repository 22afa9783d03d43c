"""Saving and loading models: local folders, the Hugging Face Hub and models shipped inside the package.

A model folder holds exactly three files: ``config.json`` (the ``EncoderConfig``), ``model.safetensors`` (the
weights) and ``README.md`` (the model card). Only safetensors weights are ever read; pickle-based files are refused,
because unpickling a file can run arbitrary code.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .card import ModelCard, render_model_card
from .config import EncoderConfig

if TYPE_CHECKING:
    from .encoder import SmoothInfoMaxEncoder

DEFAULT_MODEL = "sim-mix"
"""The model shipped in the package that ``from_pretrained()`` and ``sim-extract`` load when given none."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_REFUSAL = (
    "smooth-infomax reads only safetensors weights; pickle-based files (pytorch_model.bin, *.pt, *.ckpt) are never "
    "loaded because unpickling can execute arbitrary code. Convert a checkpoint you made yourself with "
    "`python -m smooth_infomax.convert`."
)


class LoadError(ValueError):
    """A model folder, file or repo that cannot be loaded; the message names the file and the problem."""


def shipped_models() -> dict[str, Path]:
    """Models shipped inside the package: short name -> folder."""
    root = resources.files("smooth_infomax") / "models"
    if not root.is_dir():
        return {}
    return {p.name: Path(str(p)) for p in root.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file()}


def save_pretrained(
    model: SmoothInfoMaxEncoder, directory: str | Path, card: ModelCard | None = None,
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` for ``model`` into ``directory``.

    ``weights_dtype`` (e.g. ``torch.float16``) stores the floating-point tensors in that dtype; loading casts them
    back to the dtype the model is built in (float32 unless ``from_pretrained(dtype=...)``).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cast = lambda t: t.to(weights_dtype) if weights_dtype is not None and t.is_floating_point() else t  # noqa: E731
    tensors = {name: cast(t.detach().cpu()).contiguous() for name, t in model.state_dict().items()}
    metadata = {"format": "pt", "library": "smooth-infomax", "preset": model.config.preset}
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata=metadata)
    (directory / CONFIG_NAME).write_text(model.config.to_json(), encoding="utf-8")
    card = card or getattr(model, "model_card", None) or ModelCard()
    (directory / CARD_NAME).write_text(render_model_card(model.config, card), encoding="utf-8")
    return directory


def from_pretrained(
    cls: type[SmoothInfoMaxEncoder],
    name_or_path: str | Path,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> SmoothInfoMaxEncoder:
    """See ``SmoothInfoMaxEncoder.from_pretrained``."""
    folder, source, resolved = _resolve(name_or_path, revision, cache_dir, local_files_only, token)
    config = _read_config(folder / CONFIG_NAME)
    with torch.device("meta"):  # shapes only: a folder whose weights do not match allocates nothing
        check_weights_header(cls(config).state_dict(), folder / WEIGHTS_NAME)
    model = cls(config)
    _load_weights(model, folder / WEIGHTS_NAME)
    model.name_or_path, model.revision = source, resolved
    return model.to(device=device, dtype=dtype).eval()


def _resolve(name_or_path, revision, cache_dir, local_files_only, token) -> tuple[Path, str, str | None]:
    """The local folder holding the model's files, the source name and the resolved revision (commit)."""
    path = Path(name_or_path)
    if path.is_dir():
        _check_local_folder(path)
        return path, str(name_or_path), None
    name = str(name_or_path)
    shipped = shipped_models()
    if name in shipped:
        return shipped[name], name, None
    if path.suffix == ".safetensors" or name.startswith((".", "/", "~")) or path.exists():
        raise LoadError(f"{name}: not a model folder (expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME})")
    return _download(name, revision, cache_dir, local_files_only, token)


def _check_local_folder(folder: Path) -> None:
    if (folder / WEIGHTS_NAME).is_file() and (folder / CONFIG_NAME).is_file():
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles and not (folder / WEIGHTS_NAME).is_file():
        raise LoadError(f"{folder}: found {', '.join(pickles)} but no {WEIGHTS_NAME}. {_REFUSAL}")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    raise LoadError(f"{folder}: not a smooth-infomax model folder, missing {', '.join(missing)}")


def _download(repo_id, revision, cache_dir, local_files_only, token) -> tuple[Path, str, str]:
    """Fetch config and weights from one commit of a Hub repo (the commit ``revision`` points to)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    kwargs = dict(repo_id=repo_id, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    config_path = Path(hf_hub_download(filename=CONFIG_NAME, revision=revision, **kwargs))
    commit = config_path.parent.name  # the cache keeps files under snapshots/<commit>/
    try:
        hf_hub_download(filename=WEIGHTS_NAME, revision=commit, **kwargs)
    except EntryNotFoundError:
        raise LoadError(f"{repo_id}@{commit}: the repo has no {WEIGHTS_NAME}. {_REFUSAL}") from None
    return config_path.parent, repo_id, commit


def _read_config(path: Path) -> EncoderConfig:
    try:
        return EncoderConfig.from_file(path)
    except (ValueError, TypeError) as err:
        raise LoadError(str(err)) from None


def check_weights_header(expected: dict[str, torch.Tensor], path: Path) -> None:
    """Check the keys, shapes and dtypes in the safetensors header of ``path`` against ``expected`` (a state dict,
    on the meta device is enough) without reading a tensor; raise one ``LoadError`` listing every problem."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            header = {key: weights.get_slice(key) for key in weights.keys()}
            shapes = {key: tuple(piece.get_shape()) for key, piece in header.items()}
            dtypes = {key: piece.get_dtype() for key, piece in header.items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise LoadError(f"{path}: not a valid safetensors file ({err}). {_REFUSAL}") from None
    _raise_mismatches(expected, shapes, dtypes, str(path))


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    """Strictly load ``path`` into ``model``: every key present, none extra, every shape and dtype kind equal,
    every value finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise LoadError(f"{path}: not a valid safetensors file ({err}). {_REFUSAL}") from None
    load_state_dict_strict(model, tensors, str(path))


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
_FLOAT_WEIGHTS = ("F32", "F16", "BF16")
"""The float dtypes ``save_pretrained`` writes; a float weight stored as anything else is refused, not cast."""


def load_state_dict_strict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``model`` only if every key is present, none is extra, every shape is equal, float
    weights are float32/float16/bfloat16 (other tensors exactly the model's dtype) and every value is finite;
    otherwise raise one ``LoadError`` listing all problems."""
    shapes = {key: tuple(t.shape) for key, t in tensors.items()}
    dtypes = {key: _SAFETENSORS_DTYPES.get(t.dtype, str(t.dtype)) for key, t in tensors.items()}
    _raise_mismatches(model.state_dict(), shapes, dtypes, source)
    not_finite = [key for key, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if not_finite:
        raise LoadError(f"{source}: weights hold NaN or infinite values: {not_finite[:5]}"
                        f"{' and more' if len(not_finite) > 5 else ''}")
    model.load_state_dict(tensors, strict=True)


def _raise_mismatches(expected: dict[str, torch.Tensor], shapes: dict[str, tuple], dtypes: dict[str, str],
                      source: str) -> None:
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong_shapes = [f"{k}: file {shapes[k]} vs model {tuple(v.shape)}"
                    for k, v in expected.items() if k in shapes and shapes[k] != tuple(v.shape)]
    wrong_dtypes = [f"{k}: {dtypes[k]}" for k, v in expected.items() if k in dtypes and not _dtype_ok(v, dtypes[k])]
    problems = [f"missing keys {missing}" if missing else "", f"unexpected keys {unexpected}" if unexpected else "",
                f"wrong shapes [{'; '.join(wrong_shapes)}]" if wrong_shapes else "",
                f"wrong dtypes (float weights must be {'/'.join(_FLOAT_WEIGHTS)}) [{'; '.join(wrong_dtypes)}]"
                if wrong_dtypes else ""]
    problems = [p for p in problems if p]
    if problems:
        raise LoadError(f"{source} does not match its config: " + ", ".join(problems))


def _dtype_ok(expected: torch.Tensor, stored: str) -> bool:
    if expected.is_floating_point():
        return stored in _FLOAT_WEIGHTS
    return stored == _SAFETENSORS_DTYPES.get(expected.dtype, str(expected.dtype))


def push_to_hub(
    model: SmoothInfoMaxEncoder,
    repo_id: str,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload smooth-infomax model",
    model_card: ModelCard | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``config.json``, ``model.safetensors`` and ``README.md``.

    Returns the URL of the commit.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained(model, folder, model_card)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, commit_message=commit_message)
    return str(info.commit_url if hasattr(info, "commit_url") else info)
