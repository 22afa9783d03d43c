"""Download and prepare LibriSpeech train-clean-100 with the CPC/GIM split and phone-label files.

    python -m training.data.download OUT [--url-base URL] [--only NAME ...]

Result (the layout :class:`training.data.librispeech.CorpusPaths` reads)::

    OUT/LibriSpeech/train-clean-100/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac
    OUT/LibriSpeech100_labels_split/{train_split,test_split,converted_aligned_phones}.txt
    OUT/downloads/        the archives (downloads resume from ``*.part`` files)
    OUT/.prepared/*.json  one marker per resource, written only after it was verified and unpacked

Without internet, copy the files named in :data:`RESOURCES` into ``OUT/downloads/`` and run the same
command: they are verified and unpacked without a network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from training.data.librispeech import CorpusPaths, read_split

CHUNK_BYTES = 1 << 20
_DRIVE = "https://drive.google.com/uc?export=download&id="


@dataclass(frozen=True)
class Resource:
    """One file to fetch. ``kind``: "tar" (unpacked into OUT), "zip" or "file" (into ``target``)."""

    name: str
    url: str
    filename: str
    sha256: str | None
    kind: str
    target: str
    expect: tuple[str, ...]

    def url_for(self, url_base: str | None) -> str:
        return self.url if url_base is None else url_base.rstrip("/") + "/" + self.filename


LABELS = "LibriSpeech100_labels_split"
RESOURCES = (
    Resource("train-clean-100", "https://www.openslr.org/resources/12/train-clean-100.tar.gz",
             "train-clean-100.tar.gz", "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
             "tar", ".", ("LibriSpeech/train-clean-100",)),
    # The CPC/GIM files on Google Drive (GIM download_audio_data.sh); no checksums are published for them.
    Resource("train_split", _DRIVE + "1ubREoLQu47_ZDn39YWv1wvVPe2ZlIZAb", "train_split.txt", None, "file",
             LABELS, ("train_split.txt",)),
    Resource("test_split", _DRIVE + "1vSHmncPsRY7VWWAd_BtoWs9-fQ5cBrEB", "test_split.txt", None, "file",
             LABELS, ("test_split.txt",)),
    Resource("phone_labels", _DRIVE + "1bLuDkapGBERG_VYPS7fNZl5GXsQ9z3p2", "converted_aligned_phones.zip", None,
             "zip", LABELS, ("converted_aligned_phones.txt",)),
)


class PrepareError(RuntimeError):
    """A download or unpacking step failed; the message says what to do."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout_s: float, destination: Path):
    headers = {"User-Agent": "smooth-infomax-data/1"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return None  # the partial file is already complete
        raise PrepareError(f"cannot download {url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PrepareError(f"cannot download {url}: {reason}\nThis machine looks offline (or the server is "
                           f"unreachable). Fetch the file on a machine with internet, save it as {destination}, "
                           "and run this command again: files found there are verified and used.") from error


def download(url: str, part: Path, timeout_s: float = 60.0, quiet: bool = False) -> None:
    """Download ``url`` into ``part``, resuming from its current size with an HTTP Range request."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout_s, part.with_suffix(""))
    if response is None:
        return
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: start again
        if "text/html" in response.headers.get("Content-Type", "") and not part.name.endswith(".html"):
            raise PrepareError(f"{url} returned a web page instead of {part.stem} (a confirmation or quota page); "
                               f"fetch it in a browser or with gdown and save it as {part.with_suffix('')}")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as sink, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=part.stem, disable=quiet) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    sink.write(block)
                    bar.update(len(block))
            except OSError as error:
                raise PrepareError(f"download of {url} interrupted ({error}); run again to resume") from error
    size = part.stat().st_size
    if total is not None and size < total:
        raise PrepareError(f"download of {url} stopped at {size} of {total} bytes; run again to resume")


def fetch(resource: Resource, downloads: Path, url_base: str | None = None, quiet: bool = False) -> tuple[Path, bool]:
    """Return ``(verified file, downloaded now)``, downloading it unless already in ``downloads``."""
    downloads.mkdir(parents=True, exist_ok=True)
    final, fresh = downloads / resource.filename, False
    if not final.exists():
        part = final.with_name(final.name + ".part")
        download(resource.url_for(url_base), part, quiet=quiet)
        part.replace(final)
        fresh = True
    if resource.sha256 is not None:
        actual = sha256_of(final)
        if actual != resource.sha256:
            if fresh:
                final.unlink()
            hint = "it was deleted; run again to download it anew" if fresh else "delete it to download it again"
            raise PrepareError(f"{final}: checksum mismatch (sha256 {actual}, expected {resource.sha256}); {hint}")
    return final, fresh


def _safe_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for member in members:
        if member.name.startswith("/") or ".." in Path(member.name).parts or not (member.isfile() or member.isdir()):
            raise PrepareError(f"unsafe archive member {member.name!r}")
    return members


def _unpack(resource: Resource, path: Path, staging: Path) -> None:
    target = staging / resource.target
    target.mkdir(parents=True, exist_ok=True)
    if resource.kind == "tar":
        with tarfile.open(path) as archive:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: one pass, unsafe members refused
                archive.extractall(target, filter="data")
            else:
                archive.extractall(target, members=_safe_members(archive))
    elif resource.kind == "zip":
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.is_dir():  # keep base names: zips may wrap the file in a folder
                    (target / Path(member.filename).name).write_bytes(archive.read(member))
    else:
        shutil.copyfile(path, target / resource.filename)


def _check(resource: Resource, staging: Path) -> None:
    for expected in resource.expect:
        path = staging / resource.target / expected
        if not path.exists():
            raise PrepareError(f"{resource.filename} does not contain {expected}")
        if path.name.endswith("_split.txt") and not read_split(path):
            raise PrepareError(f"{resource.filename} holds no utterance ids")


def _merge(source: Path, destination: Path) -> None:
    if destination.is_dir() and source.is_dir():
        for child in source.iterdir():
            _merge(child, destination / child.name)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)


def install(resource: Resource, path: Path, out: Path, fresh: bool = False) -> None:
    """Unpack into a staging folder, check the contents, then move them into ``out``."""
    staging = out / f".staging-{resource.name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _unpack(resource, path, staging)
        _check(resource, staging)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError, PrepareError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        if fresh:
            path.unlink(missing_ok=True)
        hint = "it was deleted; run again to download it anew" if fresh else "delete it and run again"
        raise PrepareError(f"{path}: damaged or unexpected archive ({error}); {hint}") from error
    _merge(staging, out)
    shutil.rmtree(staging, ignore_errors=True)


def prepare(out: str | Path, resources: tuple[Resource, ...] = RESOURCES, url_base: str | None = None,
            quiet: bool = False) -> CorpusPaths:
    """Fetch, verify and unpack every resource not yet marked done; returns the corpus paths."""
    out = Path(out)
    markers = out / ".prepared"
    for resource in resources:
        marker = markers / f"{resource.name}.json"
        if marker.exists():
            continue
        path, fresh = fetch(resource, out / "downloads", url_base, quiet)
        install(resource, path, out, fresh)
        digest = sha256_of(path)
        if resource.sha256 is None and not quiet:
            print(f"{resource.filename}: no published checksum; sha256 {digest} recorded in {marker}")
        markers.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"name": resource.name, "file": resource.filename, "sha256": digest,
                                      "verified": resource.sha256 is not None}, indent=1) + "\n")
    return CorpusPaths(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data.download", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output directory")
    parser.add_argument("--url-base", help="mirror holding all files under their file names")
    parser.add_argument("--only", nargs="+", choices=[r.name for r in RESOURCES], help="prepare only these")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    resources = tuple(r for r in RESOURCES if args.only is None or r.name in args.only)
    try:
        paths = prepare(args.out, resources, args.url_base, args.quiet)
    except PrepareError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"prepared {paths.root}: audio in {paths.audio_dir}, splits and labels in {paths.labels_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
