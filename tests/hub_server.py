"""A small Hugging Face Hub-compatible HTTP server for the test suite (standard library only).

The real `huggingface_hub` client (no mocks) can create repos, upload (regular files inline, LFS files
through the git-LFS batch API with the basic transfer), create branches and tags, list refs, trees and
commits, and download files through `/resolve`, against this server on 127.0.0.1.

Storage is a folder on disk:

- ``blobs/<sha256>``: file contents, addressed by their sha256 (shared by all repos);
- ``lfs-staging/<sha256>``: LFS uploads waiting for their ``verify`` call;
- ``repos/<type>s/<ns>/<name>/repo.json``: branches, tags and repo settings;
- ``repos/<type>s/<ns>/<name>/commits/<40-hex>.json``: one full snapshot per commit
  (``path -> {sha256, size, oid, lfs}``), with its parents, title, message and date.

Manual use: ``python tests/hub_server.py --port 8000 --root /tmp/hub`` then
``HF_ENDPOINT=http://127.0.0.1:8000 HF_HUB_DISABLE_XET=1 HF_TOKEN=x python ...``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import fnmatch
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_PATTERNS = (
    "*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.npy", "*.npz",
    "*.pkl", "*.msgpack", "*.tar", "*.gz", "*.zip", "*.wav", "*.flac", "*.arrow", "*.parquet",
)
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS)
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class HubError(Exception):
    """An error answered the way the Hub does: status, ``X-Error-Code`` / ``X-Error-Message`` headers, JSON body."""

    def __init__(self, status: int, message: str, code: str | None = None, headers=None, body=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})
        self.body = {"error": message, **(body or {})}


def now_iso() -> str:
    """The current UTC time in the Hub's date format (``2024-01-31T12:00:00.000Z``)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id (sha1) of a blob with this content, as git and the Hub compute it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary name and ``os.replace`` so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RepoStore:
    """Repositories on disk with git-like semantics: branches, tags and snapshot commits (no HTTP here)."""

    def __init__(self, root: str | os.PathLike, user: str = "user"):
        self.root, self.user = Path(root), user
        self.lock = threading.RLock()
        for sub in ("blobs", "lfs-staging", "repos"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- blobs ------------------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this sha256 lives (it may not exist)."""
        return self.root / "blobs" / sha256

    def has_blob(self, sha256: str) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{64}", sha256)) and self.blob_path(sha256).is_file()

    def put_blob(self, data: bytes) -> str:
        """Store content, return its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.blob_path(sha).exists():
            _write_atomic(self.blob_path(sha), data)
        return sha

    def file_entry(self, data: bytes, lfs: bool) -> dict:
        """Store content and describe it as a commit's file entry."""
        sha = self.put_blob(data)
        if lfs:
            return self.lfs_entry(sha, len(data))
        return {"sha256": sha, "size": len(data), "oid": git_blob_oid(data), "lfs": False}

    def lfs_entry(self, sha256: str, size: int) -> dict:
        """File entry of an already uploaded LFS object (its git oid is that of the pointer file)."""
        if not self.has_blob(sha256) or self.blob_path(sha256).stat().st_size != size:
            raise HubError(422, f"LFS object {sha256} (size {size}) has not been uploaded")
        pointer = lfs_pointer(sha256, size)
        return {"sha256": sha256, "size": size, "oid": git_blob_oid(pointer), "lfs": True, "pointerSize": len(pointer)}

    # -- repos ------------------------------------------------------------------------------------------
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.repo_dir(repo_type, repo_id) / "repo.json").is_file()

    def load(self, repo_type: str, repo_id: str) -> dict:
        """The repo's metadata (branches, tags, ...); ``RepoNotFound`` if there is no such repo."""
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        if not path.is_file():
            raise HubError(404, f"Repository {repo_type}/{repo_id} not found", "RepoNotFound")
        return json.loads(path.read_text())

    def save(self, repo_type: str, repo_id: str, meta: dict) -> None:
        _write_atomic(self.repo_dir(repo_type, repo_id) / "repo.json", json.dumps(meta, indent=1).encode())

    def create_repo(self, repo_type: str, repo_id: str, private: bool = False) -> bool:
        """Create a repo with an initial commit holding ``.gitattributes``; False if it already exists."""
        with self.lock:
            if self.exists(repo_type, repo_id):
                return False
            meta = {"id": repo_id, "type": repo_type, "private": private, "createdAt": now_iso(),
                    "uid": uuid.uuid4().hex[:24], "branches": {}, "tags": {}, "prs": 0}
            entry = self.file_entry(GITATTRIBUTES.encode(), lfs=False)
            sha = self._write_commit(repo_type, repo_id, [], {".gitattributes": entry}, "initial commit", "")
            meta["branches"]["main"] = sha
            self.save(repo_type, repo_id, meta)
            return True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.load(repo_type, repo_id)
            shutil.rmtree(self.repo_dir(repo_type, repo_id))

    # -- commits and refs -------------------------------------------------------------------------------
    def get_commit(self, repo_type: str, repo_id: str, sha: str) -> dict:
        return json.loads((self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json").read_text())

    def resolve(self, repo_type: str, repo_id: str, rev: str) -> str:
        """Commit id of a branch, a tag (also as ``refs/heads/..``, ``refs/tags/..``) or a full commit id."""
        meta = self.load(repo_type, repo_id)
        branches, tags = meta["branches"], meta["tags"]
        for name, refs in ((rev, branches), (rev, tags), (rev.removeprefix("refs/heads/"), branches),
                           (rev.removeprefix("refs/tags/"), tags)):
            if name in refs:
                return refs[name]
        if COMMIT_RE.fullmatch(rev) and (self.repo_dir(repo_type, repo_id) / "commits" / f"{rev}.json").is_file():
            return rev
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def files_at(self, repo_type: str, repo_id: str, rev: str) -> tuple[str, dict]:
        """(commit id, ``path -> entry``) of a revision."""
        sha = self.resolve(repo_type, repo_id, rev)
        return sha, self.get_commit(repo_type, repo_id, sha)["files"]

    def _write_commit(self, repo_type, repo_id, parents, files, title, message) -> str:
        """Write a commit object and return its new 40-hex id (refs are not touched)."""
        body = {"parents": parents, "files": files, "title": title, "message": message, "date": now_iso(),
                "authors": [self.user]}
        sha = hashlib.sha1(json.dumps(body, sort_keys=True).encode() + uuid.uuid4().bytes).hexdigest()
        data = json.dumps({"id": sha, **body}, indent=1).encode()
        _write_atomic(self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json", data)
        return sha

    def commit(self, repo_type, repo_id, branch, operations, title, message="", parent_commit=None) -> str:
        """Apply ``operations`` on top of ``branch`` and move the branch to the new commit.

        Operations are ``("add", path, entry)``, ``("delete", path)`` or ``("delete_folder", path)``.
        """
        with self.lock:
            meta = self.load(repo_type, repo_id)
            if branch not in meta["branches"]:
                self.resolve(repo_type, repo_id, branch)  # RevisionNotFound for unknown revisions
                raise HubError(400, f"Cannot commit to '{branch}': not a branch")
            head = meta["branches"][branch]
            if parent_commit and not head.startswith(parent_commit):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(self.get_commit(repo_type, repo_id, head)["files"])
            for op in operations:
                self._apply(files, op)
            sha = self._write_commit(repo_type, repo_id, [head], files, title, message)
            meta["branches"][branch] = sha
            self.save(repo_type, repo_id, meta)
            return sha

    @staticmethod
    def _apply(files: dict, op: tuple) -> None:
        """Apply one commit operation to a ``path -> entry`` snapshot, in place."""
        kind, path = op[0], op[1].strip("/")
        if kind == "add":
            files[path] = op[2]
        elif kind == "delete" and path in files:
            del files[path]
        elif kind == "delete_folder" and any(p.startswith(path + "/") for p in files):
            for p in [p for p in files if p.startswith(path + "/")]:
                del files[p]
        else:
            raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")

    def open_pr(self, repo_type: str, repo_id: str, base: str) -> tuple[str, int]:
        """Create the ``refs/pr/<N>`` branch of a new pull request from ``base``."""
        with self.lock:
            meta = self.load(repo_type, repo_id)
            start = self.resolve(repo_type, repo_id, base)
            meta["prs"] += 1
            meta["branches"][f"refs/pr/{meta['prs']}"] = start
            self.save(repo_type, repo_id, meta)
            return f"refs/pr/{meta['prs']}", meta["prs"]

    def set_ref(self, repo_type, repo_id, kind, name, rev=None) -> None:
        """Create (``rev`` given) or delete (``rev`` None) a branch or tag; ``kind`` is "branches" or "tags"."""
        with self.lock:
            meta = self.load(repo_type, repo_id)
            if rev is not None:
                sha = self.resolve(repo_type, repo_id, rev)
                if name in meta[kind]:
                    raise HubError(409, f"Reference already exists: {name}")
                if not name or name.startswith("/") or ".." in name:
                    raise HubError(400, f"Invalid reference name: {name}")
                meta[kind][name] = sha
            elif name not in meta[kind]:
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            elif kind == "branches" and name == "main":
                raise HubError(403, "You cannot delete the default branch")
            else:
                del meta[kind][name]
            self.save(repo_type, repo_id, meta)

    def history(self, repo_type: str, repo_id: str, sha: str) -> list[dict]:
        """Commits reachable from ``sha`` through first parents, newest first."""
        out = []
        while sha:
            commit = self.get_commit(repo_type, repo_id, sha)
            out.append(commit)
            sha = commit["parents"][0] if commit["parents"] else None
        return out


def _file_info(path: str, f: dict) -> dict:
    """A file as the tree and paths-info endpoints describe it."""
    info = {"type": "file", "oid": f["oid"], "size": f["size"], "path": path}
    if f["lfs"]:
        info["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": f["pointerSize"]}
    return info


def _dir_info(path: str, files: dict) -> dict:
    """A folder as the tree and paths-info endpoints describe it (oid: hash of its content)."""
    content = sorted((p, f["oid"]) for p, f in files.items() if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(json.dumps(content).encode()).hexdigest(), "path": path}


def list_tree(files: dict, prefix: str, recursive: bool) -> list[dict]:
    """Entries (folders first) under ``prefix``, only its direct children unless ``recursive``."""
    base = f"{prefix}/" if prefix else ""
    dirs, out = set(), []
    for path in sorted(files):
        if not path.startswith(base):
            continue
        parts = path[len(base):].split("/")
        depth = len(parts) - 1 if recursive else min(1, len(parts) - 1)
        dirs.update(base + "/".join(parts[:i]) for i in range(1, depth + 1))
        if recursive or len(parts) == 1:
            out.append(_file_info(path, files[path]))
    return [_dir_info(d, files) for d in sorted(dirs)] + out


API = r"^/api/(?P<kind>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
REPO = r"^/(?:(?P<kind>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+?)"
ROUTES = [
    ("POST", r"^/api/repos/create$", "create_repo"),
    ("DELETE", r"^/api/repos/delete$", "delete_repo"),
    ("GET", r"^/api/whoami-v2$", "whoami"),
    ("GET", r"^/api/agent-harnesses$", "agent_harnesses"),
    ("POST", r"^/api/validate-yaml$", "validate_yaml"),
    ("GET", API + r"(?:/revision/(?P<rev>[^/]+))?$", "repo_info"),
    ("GET", API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree"),
    ("POST", API + r"/paths-info/(?P<rev>[^/]+)$", "paths_info"),
    ("GET", API + r"/refs$", "refs"),
    ("GET", API + r"/commits/(?P<rev>[^/]+)$", "commits"),
    ("POST", API + r"/preupload/(?P<rev>[^/]+)$", "preupload"),
    ("POST", API + r"/commit/(?P<rev>[^/]+)$", "commit"),
    ("POST", API + r"/branch/(?P<rev>[^/]+)$", "create_branch"),
    ("DELETE", API + r"/branch/(?P<rev>[^/]+)$", "delete_branch"),
    ("POST", API + r"/tag/(?P<rev>[^/]+)$", "create_tag"),
    ("DELETE", API + r"/tag/(?P<rev>[^/]+)$", "delete_tag"),
    ("GET", REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ("POST", REPO + r"\.git/info/lfs/objects/batch$", "lfs_batch"),
    ("POST", REPO + r"\.git/info/lfs/objects/verify$", "lfs_verify"),
    ("PUT", REPO + r"\.git/info/lfs/objects/(?P<oid>[0-9a-f]{64})$", "lfs_put"),
]
ROUTES = [(method, re.compile(rx), name) for method, rx, name in ROUTES]


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one HTTP request to a ``h_<name>`` method; Hub errors become ``X-Error-Code`` answers."""

    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 60

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format, *args):
        if self.server.hub.verbose:
            super().log_message(format, *args)

    # -- plumbing ---------------------------------------------------------------------------------------
    @property
    def hub(self) -> LocalHub:
        return self.server.hub

    @property
    def store(self) -> RepoStore:
        return self.server.hub.store

    def _read_body(self) -> bytes:
        """The request body, with ``Content-Length`` or chunked transfer encoding."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body = self._read_body()
        method = "GET" if self.command == "HEAD" else self.command
        try:
            for route_method, rx, name in ROUTES:
                match = rx.match(url.path) if route_method == method else None
                if match:
                    args = {k: v if v is None else unquote(v) for k, v in match.groupdict().items()
                            if v is not None or k == "kind"}
                    return getattr(self, f"h_{name}")(**args)
            raise HubError(404, f"Not found: {self.command} {url.path}")
        except HubError as err:
            if err.code == "RepoNotFound" and "Authorization" not in self.headers:
                err.status = 401  # the Hub hides missing and private repos alike from anonymous users
            self._send_json(err.body, err.status, {**err.headers, "X-Error-Message": err.message,
                                                   **({"X-Error-Code": err.code} if err.code else {})})
        except Exception as exc:  # noqa: BLE001 - report server bugs to the client as 500
            self.log_error("internal error: %r", exc)
            self._send_json({"error": f"{type(exc).__name__}: {exc}"}, 500)

    def _send(self, status: int, body: bytes = b"", headers=None, ctype="application/json", length=None):
        """Send an answer; a HEAD request gets the headers (and ``Content-Length``) only."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data, status: int = 200, headers=None, ctype="application/json"):
        self._send(status, json.dumps(data).encode(), headers, ctype)

    def _json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from None

    def _flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")

    def _repo(self, kind, ns, name) -> tuple[str, str]:
        """(repo type, repo id) of a route match; raises ``RepoNotFound`` if there is no such repo."""
        repo_type = (kind or "models")[:-1]
        self.store.load(repo_type, f"{ns}/{name}")
        return repo_type, f"{ns}/{name}"

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"http://{self.headers.get('Host') or self.hub.netloc}/{URL_PREFIX[repo_type]}{repo_id}"

    # -- repos --------------------------------------------------------------------------------------------
    def h_create_repo(self):
        data = self._json()
        repo_type, name = data.get("type") or "model", str(data.get("name") or "")
        ns = data.get("organization") or self.store.user
        if repo_type not in URL_PREFIX or not NAME_RE.fullmatch(name) or not NAME_RE.fullmatch(ns):
            raise HubError(400, f"Invalid repo: type={repo_type!r} name={ns}/{name}")
        repo_id = f"{ns}/{name}"
        url = self._repo_url(repo_type, repo_id)
        private = bool(data.get("private")) or data.get("visibility") == "private"
        if not self.store.create_repo(repo_type, repo_id, private):
            raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
        self._send_json({"url": url, "name": repo_id, "id": self.store.load(repo_type, repo_id)["uid"]})

    def h_delete_repo(self):
        data = self._json()
        repo_id = f"{data.get('organization') or self.store.user}/{data.get('name')}"
        self.store.delete_repo(data.get("type") or "model", repo_id)
        self._send_json({})

    def h_whoami(self):
        self._send_json({"type": "user", "name": self.store.user, "fullname": self.store.user, "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}}})

    def h_agent_harnesses(self):  # huggingface_hub >= 2.x fetches this registry once a day
        self._send_json({"standardEnvVars": [], "harnesses": {}})

    def h_validate_yaml(self):
        self._send_json({"errors": [], "warnings": []})

    def h_repo_info(self, kind, ns, name, rev="main"):
        repo_type, repo_id = self._repo(kind, ns, name)
        meta = self.store.load(repo_type, repo_id)
        sha, files = self.store.files_at(repo_type, repo_id, rev)
        blobs = self._flag("blobs")
        siblings = [{"rfilename": p} if not blobs else
                    {"rfilename": p, "size": f["size"], "blobId": f["oid"],
                     **({"lfs": {"size": f["size"], "sha256": f["sha256"], "pointerSize": f["pointerSize"]}}
                        if f["lfs"] else {})}
                    for p, f in sorted(files.items())]
        self._send_json({"_id": meta["uid"], "id": repo_id, "author": ns, "sha": sha, "private": meta["private"],
                         "lastModified": self.store.get_commit(repo_type, repo_id, sha)["date"],
                         "createdAt": meta["createdAt"], "disabled": False, "gated": False, "downloads": 0,
                         "likes": 0, "tags": [], "siblings": siblings})

    # -- listings -----------------------------------------------------------------------------------------
    def h_tree(self, kind, ns, name, rev, path=""):
        repo_type, repo_id = self._repo(kind, ns, name)
        _, files = self.store.files_at(repo_type, repo_id, rev)
        prefix = path.strip("/")
        entries = list_tree(files, prefix, self._flag("recursive"))
        if prefix and not entries:
            raise HubError(404, f"Entry not found: {prefix}", "EntryNotFound")
        self._send_json(entries)

    def h_paths_info(self, kind, ns, name, rev):
        repo_type, repo_id = self._repo(kind, ns, name)
        _, files = self.store.files_at(repo_type, repo_id, rev)
        if "json" in self.headers.get("Content-Type", ""):
            paths = self._json().get("paths", [])
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        out = []
        for path in ([paths] if isinstance(paths, str) else paths):
            path = path.strip("/")
            if path in files:
                out.append(_file_info(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                out.append(_dir_info(path, files))
        self._send_json(out)

    def h_refs(self, kind, ns, name):
        repo_type, repo_id = self._repo(kind, ns, name)
        meta = self.store.load(repo_type, repo_id)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha}
                    for b, sha in sorted(meta["branches"].items()) if not b.startswith("refs/pr/")]
        prs = [{"name": b, "ref": b, "targetCommit": sha}
               for b, sha in sorted(meta["branches"].items()) if b.startswith("refs/pr/")]
        tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": sha} for t, sha in sorted(meta["tags"].items())]
        data = {"branches": branches, "converts": [], "tags": tags}
        if self._flag("include_prs"):
            data["pullRequests"] = prs
        self._send_json(data)

    def h_commits(self, kind, ns, name, rev):
        repo_type, repo_id = self._repo(kind, ns, name)
        sha = self.store.resolve(repo_type, repo_id, rev)
        self._send_json([{"id": c["id"], "title": c["title"], "message": c["message"], "date": c["date"],
                          "authors": [{"user": a} for a in c["authors"]]}
                         for c in self.store.history(repo_type, repo_id, sha)])

    # -- uploads ------------------------------------------------------------------------------------------
    def h_preupload(self, kind, ns, name, rev):
        repo_type, repo_id = self._repo(kind, ns, name)
        sha, files = self.store.files_at(repo_type, repo_id, rev)
        out = []
        for item in self._json().get("files", []):
            path, existing = item["path"], files.get(item["path"])
            remote_oid = None if existing is None else existing["sha256" if existing["lfs"] else "oid"]
            mode = "lfs" if self.hub.is_lfs(path, int(item.get("size") or 0)) else "regular"
            out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": remote_oid})
        self._send_json({"files": out, "commitOid": sha})

    def h_commit(self, kind, ns, name, rev):
        repo_type, repo_id = self._repo(kind, ns, name)
        header, operations = {}, []
        for line in self.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                content = value.get("content", "")
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                operations.append(("add", value["path"], self.store.file_entry(data, lfs=False)))
            elif key == "lfsFile":
                operations.append(("add", value["path"], self.store.lfs_entry(value["oid"], int(value["size"]))))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append(("delete" if key == "deletedFile" else "delete_folder", value["path"]))
            else:
                raise HubError(400, f"Unsupported commit operation: {key!r}")
        branch, pr_num = rev, None
        if self._flag("create_pr"):
            branch, pr_num = self.store.open_pr(repo_type, repo_id, rev)
        sha = self.store.commit(repo_type, repo_id, branch, operations, header.get("summary") or "Update",
                                header.get("description") or "", header.get("parentCommit"))
        url = self._repo_url(repo_type, repo_id)
        data = {"success": True, "commitOid": sha, "commitUrl": f"{url}/commit/{sha}"}
        if pr_num is not None:
            data["pullRequestUrl"] = f"{url}/discussions/{pr_num}"
        self._send_json(data)

    def h_create_branch(self, kind, ns, name, rev):
        repo_type, repo_id = self._repo(kind, ns, name)
        self.store.set_ref(repo_type, repo_id, "branches", rev, self._json().get("startingPoint") or "main")
        self._send_json({})

    def h_delete_branch(self, kind, ns, name, rev):
        self.store.set_ref(*self._repo(kind, ns, name), "branches", rev)
        self._send_json({})

    def h_create_tag(self, kind, ns, name, rev):
        repo_type, repo_id = self._repo(kind, ns, name)
        tag = self._json().get("tag")
        if not tag:
            raise HubError(400, "Missing 'tag' in body")
        self.store.set_ref(repo_type, repo_id, "tags", tag, rev)
        self._send_json({})

    def h_delete_tag(self, kind, ns, name, rev):
        self.store.set_ref(*self._repo(kind, ns, name), "tags", rev)
        self._send_json({})

    # -- downloads ----------------------------------------------------------------------------------------
    def h_resolve(self, kind, ns, name, rev, path):
        repo_type, repo_id = self._repo(kind, ns, name)
        sha, files = self.store.files_at(repo_type, repo_id, rev)
        f = files.get(path)
        if f is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": sha})
        etag = f["sha256"] if f["lfs"] else f["oid"]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if f["lfs"]:
            headers.update({"X-Linked-Etag": f'"{f["sha256"]}"', "X-Linked-Size": str(f["size"])})
        self._send_blob(f["sha256"], f["size"], headers)

    def _send_blob(self, sha256: str, size: int, headers: dict) -> None:
        """Send a blob, honouring a single ``Range: bytes=a-b`` header."""
        start, end, status = 0, size - 1, 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and size > 0 and any(match.groups()):
            first, last = match.groups()
            start, end = (int(first), int(last or size - 1)) if first else (max(size - int(last), 0), size - 1)
            if start >= size:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            end, status = min(end, size - 1), 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
        if self.command == "HEAD":
            return self._send(status, b"", headers, "application/octet-stream", length=end - start + 1)
        with open(self.store.blob_path(sha256), "rb") as fh:
            fh.seek(start)
            self._send(status, fh.read(end - start + 1), headers, "application/octet-stream")

    # -- git LFS ------------------------------------------------------------------------------------------
    def h_lfs_batch(self, kind, ns, name):
        repo_type, repo_id = self._repo(kind, ns, name)
        data, url = self._json(), self._repo_url(repo_type, repo_id) + ".git/info/lfs/objects"
        operation, objects = data.get("operation", "upload"), []
        for obj in data.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            item = {"oid": oid, "size": size, "authenticated": True}
            if operation != "upload":
                item["error"] = {"code": 400, "message": "Only uploads go through this endpoint; use /resolve"}
            elif not self.store.has_blob(oid):  # else: already stored, nothing to upload
                item["actions"] = {"upload": {"href": f"{url}/{oid}"}, "verify": {"href": f"{url}/verify"}}
            objects.append(item)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                        ctype="application/vnd.git-lfs+json")

    def h_lfs_put(self, kind, ns, name, oid):
        self._repo(kind, ns, name)
        _write_atomic(self.store.root / "lfs-staging" / oid, self.body)
        self._send_json({}, headers={"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'})

    def h_lfs_verify(self, kind, ns, name):
        self._repo(kind, ns, name)
        data = self._json()
        oid, size = str(data.get("oid")), int(data.get("size", -1))
        staged = self.store.root / "lfs-staging" / oid
        if not self.store.has_blob(oid) and staged.is_file():
            content = staged.read_bytes()
            if hashlib.sha256(content).hexdigest() != oid or len(content) != size:
                staged.unlink(missing_ok=True)
                raise HubError(422, f"LFS object {oid}: uploaded content does not match its sha256/size")
            with self.store.lock:
                os.replace(staged, self.store.blob_path(oid))
        if not self.store.has_blob(oid) or self.store.blob_path(oid).stat().st_size != size:
            raise HubError(404, f"LFS object {oid} not found")
        self._send_json({"oid": oid, "size": size}, ctype="application/vnd.git-lfs+json")


class _Server(ThreadingHTTPServer):
    """Threading server that tracks its connections so that ``stop()`` can close idle keep-alive ones."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address, hub: LocalHub):
        self.hub, self.connections, self.workers = hub, set(), set()
        self.conn_lock = threading.Lock()
        super().__init__(address, HubRequestHandler)

    def process_request(self, request, client_address):
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name="LocalHub-conn", daemon=True)
        with self.conn_lock:
            self.connections.add(request)
            self.workers.add(thread)
        thread.start()

    def shutdown_request(self, request):
        with self.conn_lock:
            self.connections.discard(request)
            self.workers.discard(threading.current_thread())
        super().shutdown_request(request)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut down every open connection and wait for their threads."""
        with self.conn_lock:
            connections, workers = list(self.connections), list(self.workers)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in workers:
            thread.join(timeout)


class LocalHub:
    """A Hub-compatible server on 127.0.0.1 storing its repos under ``root``.

    >>> hub = LocalHub(tmp_path).start()   # binds a free port
    >>> hub.endpoint                       # 'http://127.0.0.1:PORT', the value for HF_ENDPOINT
    >>> hub.stop()
    """

    def __init__(self, root, *, host: str = "127.0.0.1", port: int = 0, user: str = "user",
                 lfs_threshold: int = 10 * 1024 * 1024, verbose: bool = False):
        self.store = RepoStore(root, user=user)
        self.host, self.requested_port = host, port
        self.lfs_threshold, self.verbose = lfs_threshold, verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalHub is not started")
        return self._server.server_address[1]

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """Base URL of the server, e.g. ``http://127.0.0.1:43121``."""
        return f"http://{self.netloc}"

    def is_lfs(self, path: str, size: int) -> bool:
        """Whether a file goes through LFS: by name (``*.safetensors``, ...) or when it is large."""
        name = path.rsplit("/", 1)[-1]
        return size >= self.lfs_threshold or any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS)

    def start(self) -> LocalHub:
        """Bind the port (0: any free one) and serve from a daemon thread."""
        if self._server is None:
            self._server = _Server((self.host, self.requested_port), self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name="LocalHub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join the server threads (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        self._thread.join(5)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for tests --------------------------------------------------------------------------------
    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        return self.store.exists(repo_type, repo_id)

    def refs(self, repo_id: str, repo_type: str = "model") -> dict:
        """``{"branches": {name: sha}, "tags": {name: sha}}`` of a repo."""
        meta = self.store.load(repo_type, repo_id)
        return {"branches": dict(meta["branches"]), "tags": dict(meta["tags"])}

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict:
        """``path -> entry`` (sha256, size, oid, lfs) of a revision."""
        return self.store.files_at(repo_type, repo_id, revision)[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Local Hugging Face Hub-compatible server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", required=True, help="folder holding the repos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    hub = LocalHub(args.root, host=args.host, port=args.port, verbose=args.verbose).start()
    print(f"LocalHub serving {args.root} at {hub.endpoint}\n"
          f"  export HF_ENDPOINT={hub.endpoint} HF_HUB_DISABLE_XET=1 HF_TOKEN=local", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
