"""Saving and loading models and their decoders: local folders, the Hugging Face Hub and models shipped inside the
package. Every model folder is written and read here, for the encoder and for ``analysis.decoder``.

A model folder holds exactly three files: ``config.json`` (the ``EncoderConfig``), ``model.safetensors`` (the
weights) and ``README.md`` (the model card, read back into ``encoder.card`` and written again on save and push with
its usage line pointing at the new location; see ``card.py``). A decoder's folder holds the same three files and
sits in a sub-folder of its encoder's folder or repo (``decoders/module-<m>``). Only safetensors weights are ever
read; pickle-based files are refused, because unpickling a file can run arbitrary code. Loading is strict: every
key, shape and dtype kind must match the config, checked on the meta device before anything is allocated. A name
that finds no model raises a ``LoadError`` saying where it was looked for (``hub_errors``).

On the Hub, a revision (branch, tag or commit) is resolved to one commit, and the config and the weights are both
downloaded at that commit, so a branch that moves in between cannot pair a config with other weights.
``huggingface_hub.PyTorchModelHubMixin`` is not used: it downloads the config and the weights each at the moving
revision, loads with ``strict=False`` by default and falls back to a pickled ``pytorch_model.bin``.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from .card import ModelCard, card_markdown, read_card, render_model_card
from .config import EncoderConfig
from .hub_errors import Lookup, explain_hub_error

if TYPE_CHECKING:
    from huggingface_hub import ModelCard as HubModelCard

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

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
ConfigT = TypeVar("ConfigT")


class LoadError(ValueError):
    """A model folder, file or repo that cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's (or decoder's) files are: ``folder`` holds ``config.json`` and ``model.safetensors``;
    ``source`` is the name, path or repo id asked for; ``commit`` is the Hub commit both files came from (``None``
    for local folders and shipped models)."""

    folder: Path
    source: str
    commit: str | None

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_NAME

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS_NAME

    @property
    def card_path(self) -> Path:
        """The model card; it may be missing (a folder or repo written by other tools)."""
        return self.folder / CARD_NAME


def shipped_models() -> dict[str, Path]:
    """Models shipped inside the package: short name -> folder."""
    root = resources.files("smooth_infomax") / "models"
    if not root.is_dir():
        return {}
    return {p.name: Path(str(p)) for p in root.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file()}


# --- writing -------------------------------------------------------------------------------------------------------

def write_model_folder(directory: str | Path, module: torch.nn.Module, config_json: str, card_markdown: str,
                       metadata: dict[str, str], weights_dtype: torch.dtype | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` (``module``'s state dict on the CPU, floating-point tensors
    stored as ``weights_dtype`` when given) and ``README.md`` into ``directory``; returns it."""
    from .safetensors_file import save_tensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(_cpu_tensors(module, weights_dtype), directory / WEIGHTS_NAME, metadata)
    (directory / CONFIG_NAME).write_text(config_json, encoding="utf-8")
    (directory / CARD_NAME).write_text(card_markdown, encoding="utf-8", newline="")  # the card's own line endings
    return directory


def _cpu_tensors(module: torch.nn.Module, weights_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    def stored(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return (t.to(weights_dtype) if weights_dtype is not None and t.is_floating_point() else t).contiguous()

    return {name: stored(t) for name, t in module.state_dict().items()}


def save_pretrained(
    model: SmoothInfoMaxEncoder, directory: str | Path, card: ModelCard | HubModelCard | None = None,
    weights_dtype: torch.dtype | None = None, location: str | None = None, revision: str | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` for ``model`` into ``directory``.

    The card is ``card`` (a :class:`~smooth_infomax.card.ModelCard` is rendered with the config; a
    ``huggingface_hub.ModelCard`` is written as it is), else the card the model was loaded with (``model.card``),
    else a new one. Its usage line loads ``location`` at ``revision``: by default the folder written (a shipped
    model's name when ``directory`` is its folder in the package).

    ``weights_dtype`` (e.g. ``torch.float16``) stores the floating-point tensors in that dtype; loading casts them
    back to the dtype the model is built in (float32 unless ``from_pretrained(dtype=...)``).
    """
    location = location or folder_location(directory)
    markdown = model_card_markdown(model, card, location, revision)
    metadata = {"format": "pt", "library": "smooth-infomax", "preset": model.config.preset}
    return write_model_folder(directory, model, model.config.to_json(), markdown, metadata, weights_dtype)


def model_card_markdown(model: SmoothInfoMaxEncoder, card: ModelCard | HubModelCard | None, location: str,
                        revision: str | None = None) -> str:
    """The ``README.md`` text :func:`save_pretrained` writes (see there for which card), loading ``location``."""
    card = card if card is not None else model.card
    if card is None or isinstance(card, ModelCard):
        return render_model_card(model.config, card or ModelCard(), location, revision)
    return card_markdown(card, location, revision)


def folder_location(directory: str | Path) -> str:
    """What a card saved in ``directory`` should load: the shipped model's name for its folder in the package, else
    the folder as given (forward slashes)."""
    path = Path(directory)
    for name, folder in shipped_models().items():
        if path.resolve() == folder.resolve():
            return name
    return path.as_posix()


def upload_folder(folder: str | Path, repo_id: str, path_in_repo: str | None = None, revision: str | None = None,
                  private: bool | None = None, token: str | None = None,
                  commit_message: str = "Upload smooth-infomax model") -> str:
    """Upload a saved folder to ``repo_id`` (created if needed), into ``path_in_repo`` and onto branch ``revision``
    (created from the default branch if needed); returns the URL of the commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), path_in_repo=path_in_repo, revision=revision,
                             commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


def push_saved(save: Callable[[Path], object], repo_id: str, **upload: Any) -> str:
    """``save(folder)`` into a temporary folder, then ``upload_folder(folder, repo_id, **upload)``."""
    with tempfile.TemporaryDirectory() as folder:
        save(Path(folder))
        return upload_folder(folder, repo_id, **upload)


def push_to_hub(
    model: SmoothInfoMaxEncoder,
    repo_id: str,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload smooth-infomax model",
    card: ModelCard | HubModelCard | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``config.json``, ``model.safetensors`` and ``README.md`` onto branch
    ``revision`` (see ``SmoothInfoMaxEncoder.push_to_hub``); the card's usage line loads ``repo_id`` at
    ``revision``. Returns the URL of the commit."""
    def save(folder: Path) -> Path:
        return save_pretrained(model, folder, card, location=repo_id, revision=revision)

    return push_saved(save, repo_id, revision=revision, private=private, token=token, commit_message=commit_message)


# --- finding -------------------------------------------------------------------------------------------------------

def locate(
    name_or_path: str | Path,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    kind: str = "model",
) -> ModelFiles:
    """The files of a model (or, with ``subfolder``, of a decoder beside it): a local folder, a shipped model's
    name, or a Hub repo id, downloaded at the one commit ``revision`` resolves to (see ``download``). ``kind``
    names what is looked for in error messages."""
    path, name = Path(name_or_path).expanduser(), str(name_or_path)
    if path.is_dir():
        return _local_files(path / (subfolder or ""), name, kind)
    shipped = shipped_models()
    if name in shipped:
        return _local_files(shipped[name] / (subfolder or ""), name, kind)
    if path.suffix == ".safetensors" or name.startswith((".", "/", "~")) or path.exists():
        raise LoadError(_not_a_folder(path, name, kind))
    files = (_in_folder(subfolder, CONFIG_NAME), _in_folder(subfolder, WEIGHTS_NAME))
    lookup = Lookup(name, revision, cache_dir, local_files_only, files, tuple(shipped))
    with hub_errors_explained(lookup):
        return download(name, subfolder, revision, cache_dir, local_files_only, token)


def _not_a_folder(path: Path, name: str, kind: str) -> str:
    """Why a path-like name is no model folder: no such path (and a similar folder beside it), or a file."""
    from .hub_errors import near_folder

    expected = f"expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME}"
    if path.exists():
        return f"{name}: not a {kind} folder (a file; {expected})"
    near = near_folder(name)
    hint = f"; did you mean {near!r}?" if near else ""
    return f"{name}: not a {kind} folder (no such folder{hint}; {expected})"


@contextlib.contextmanager
def hub_errors_explained(lookup: Lookup) -> Iterator[None]:
    """Inside the block, a Hub error that means "no such model" (no repo, no revision, unreachable, offline and not
    cached, not a repo id) becomes a ``LoadError`` saying where the name was looked for (see ``hub_errors``), with
    the Hub's error as its ``__cause__``; any other error passes through."""
    try:
        yield
    except LoadError:
        raise
    except Exception as err:
        message = explain_hub_error(err, lookup)
        if message is None:
            raise
        raise LoadError(message) from err


def _local_files(folder: Path, source: str, kind: str) -> ModelFiles:
    if not folder.is_dir():
        raise LoadError(f"{folder}: no such {kind} folder")
    if (folder / WEIGHTS_NAME).is_file() and (folder / CONFIG_NAME).is_file():
        return ModelFiles(folder, source, None)
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles and not (folder / WEIGHTS_NAME).is_file():
        raise LoadError(f"{folder}: found {', '.join(pickles)} but no {WEIGHTS_NAME}. {_REFUSAL}")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    raise LoadError(f"{folder}: not a smooth-infomax {kind} folder, missing {', '.join(missing)}")


def download(
    repo_id: str,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> ModelFiles:
    """Download ``config.json`` and ``model.safetensors`` (inside ``subfolder``) of a Hub repo at one commit.

    ``snapshot_download`` resolves ``revision`` (default: the main branch) to a commit once, from the Hub or, offline,
    from the cache's refs, then fetches each file by that commit. A file the snapshot lacks is asked for by commit,
    so that the Hub's own error says why (``LocalEntryNotFoundError`` offline); a repo without ``config.json`` or
    safetensors weights is a ``LoadError``. The model card (``README.md``) is fetched at the same commit when there
    is one; a repo or cache without it still loads. ``locate`` turns "not found" errors into ``LoadError``.
    """
    from huggingface_hub import snapshot_download

    names = [_in_folder(subfolder, CONFIG_NAME), _in_folder(subfolder, WEIGHTS_NAME)]
    snapshot = Path(snapshot_download(repo_id, revision=revision, allow_patterns=names, cache_dir=cache_dir,
                                      local_files_only=local_files_only, token=token))
    commit = snapshot.name  # the cache keeps a revision's files under snapshots/<commit>/
    for name in names:
        if not (snapshot / name).is_file():
            _fetch_by_commit(repo_id, name, commit, cache_dir, local_files_only, token)
    _fetch_card(repo_id, _in_folder(subfolder, CARD_NAME), commit, cache_dir, local_files_only, token)
    return ModelFiles(snapshot / (subfolder or ""), repo_id, commit)


def find_subfolders(name_or_path: str | Path, pattern: str, revision: str | None = None,
                    cache_dir: str | Path | None = None, local_files_only: bool = False,
                    token: str | bool | None = None) -> tuple[list[str], str | None]:
    """Sub-folders matching the glob ``pattern`` (e.g. ``"decoders/*/*"``) that hold a ``config.json``, in a local
    folder, a shipped model or a Hub repo (only the configs are downloaded, at the one commit ``revision`` resolves
    to). Returns the sorted sub-folders and that commit (``None`` for local folders)."""
    path, name = Path(name_or_path), str(name_or_path)
    shipped = shipped_models()
    folder = path if path.is_dir() else shipped.get(name)
    commit = None
    if folder is None:
        from huggingface_hub import snapshot_download

        with hub_errors_explained(Lookup(name, revision, cache_dir, local_files_only, (), tuple(shipped))):
            folder = Path(snapshot_download(name, revision=revision, allow_patterns=[f"{pattern}/{CONFIG_NAME}"],
                                            cache_dir=cache_dir, local_files_only=local_files_only, token=token))
        commit = folder.name
    found = sorted(p.parent.relative_to(folder).as_posix() for p in folder.glob(f"{pattern}/{CONFIG_NAME}"))
    return found, commit


def _in_folder(subfolder: str | None, filename: str) -> str:
    return f"{subfolder.strip('/')}/{filename}" if subfolder else filename


def _fetch_by_commit(repo_id: str, filename: str, commit: str, cache_dir: str | Path | None, local_files_only: bool,
                     token: str | bool | None) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        hf_hub_download(repo_id, filename, revision=commit, cache_dir=cache_dir, local_files_only=local_files_only,
                        token=token)
    except LocalEntryNotFoundError:
        raise
    except EntryNotFoundError:
        if not filename.endswith(WEIGHTS_NAME):
            raise LoadError(f"{repo_id}@{commit}: the repo has no {filename}; it is not a smooth-infomax "
                            "model repo") from None
        raise LoadError(f"{repo_id}@{commit}: the repo has no {filename}. {_REFUSAL}") from None


def _fetch_card(repo_id: str, filename: str, commit: str, cache_dir: str | Path | None, local_files_only: bool,
                token: str | bool | None) -> None:
    """Download the model card at ``commit`` into the snapshot when the repo has one (and, offline, when the cache
    does): a missing card is no reason not to load the model."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    # no card in the repo, or (LocalEntryNotFoundError) none in the cache offline
    with contextlib.suppress(EntryNotFoundError):
        hf_hub_download(repo_id, filename, revision=commit, cache_dir=cache_dir, local_files_only=local_files_only,
                        token=token)


# --- reading -------------------------------------------------------------------------------------------------------

def read_config(path: Path, from_json: Callable[[str], ConfigT]) -> ConfigT:
    """``from_json`` of the file's text; a config it refuses is a ``LoadError`` naming the file."""
    try:
        return from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError) as err:
        raise LoadError(f"{path}: {err}") from None


def build_and_load(build: Callable[[], ModuleT], weights_path: Path) -> ModuleT:
    """``build()`` a module and strictly load ``weights_path`` into it; the file's header is first checked against
    the module built on the meta device, so weights that do not fit the config allocate nothing."""
    with torch.device("meta"):
        check_weights_header(build().state_dict(), weights_path)
    module = build()
    _load_weights(module, weights_path)
    return module


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
    files = locate(name_or_path, None, revision, cache_dir, local_files_only, token)
    config = read_config(files.config_path, EncoderConfig.from_json)
    model = build_and_load(lambda: cls(config), files.weights_path)
    model.name_or_path, model.revision = files.source, files.commit
    model.card = read_card(files.card_path)
    return model.to(device=device, dtype=dtype).eval()


def weights_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """The pin of a set of weights: sha256 over the tensors in name order, each as its name, shape and values.

    Floating-point values are hashed as float32, so a ``model.safetensors`` stored in float16 and the float32 model
    loaded from it give the same pin; other tensors are hashed as int64. Decoders record their encoder's pin.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu()
        values = tensor.to(torch.float32 if tensor.is_floating_point() else torch.int64).contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}\n".encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()


def file_weights_sha256(path: str | Path) -> str:
    """:func:`weights_sha256` of the tensors in a safetensors file (e.g. a model folder's ``model.safetensors``)."""
    from safetensors.torch import load_file

    return weights_sha256(load_file(str(path), device="cpu"))


def check_weights_header(expected: dict[str, torch.Tensor], path: Path) -> None:
    """Check the keys, shapes and dtypes in the safetensors header of ``path`` against ``expected`` (a state dict,
    on the meta device is enough) without reading a tensor; raise one ``LoadError`` listing every problem."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            # safe_open is not iterable: keys() is the only way to list its tensors
            header = {key: weights.get_slice(key) for key in weights.keys()}  # noqa: SIM118
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


# --- command-line tools --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def load_errors_as(error: Callable[[str], BaseException], context: str = "") -> Iterator[None]:
    """Inside the block, any failure to load becomes ``error(f"{context}: {why}")`` (just ``why`` without a
    context), the command-line tool's own error type. Every ``Exception`` counts: ``LoadError``, Hub and network
    errors, ``OSError``, a bad repo id; all mean "this cannot be used" to the person at the command line.
    ``KeyboardInterrupt`` passes through."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 -- see the docstring
        why = str(err) or type(err).__name__
        raise error(f"{context}: {why}" if context else why) from None


def load_for_cli(name: str | None, revision: str | None = None, device: str | torch.device | None = None,
                 error: Callable[[str], BaseException] = LoadError) -> SmoothInfoMaxEncoder:
    """``SmoothInfoMaxEncoder.from_pretrained(name, revision, device=device)`` for a command-line tool: a model that
    cannot be loaded raises ``error("cannot load model 'NAME'[ at REVISION]: why")``, the same message in every tool.

    Example:
        >>> encoder = load_for_cli("sim-mix", error=click.ClickException)
    """
    from .encoder import SmoothInfoMaxEncoder

    name = DEFAULT_MODEL if name is None else name
    context = f"cannot load model {name!r}" + (f" at {revision}" if revision else "")
    with load_errors_as(error, context):
        return SmoothInfoMaxEncoder.from_pretrained(name, revision=revision, device=device)
