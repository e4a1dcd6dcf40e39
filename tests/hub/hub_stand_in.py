"""A local, in-memory stand-in for the few Hub endpoints that `huggingface_hub` calls to push and to download.

The real client talks to it over HTTP on 127.0.0.1 (`HfApi(endpoint=hub.url)`, `snapshot_download(...,
endpoint=hub.url)`), so the tests exercise the library's own requests and its own decisions (which files are
unchanged, whether a commit is empty, what to delete, how to lay out a cache):

- push: create repo, repo info, list the tree, validate the card's YAML, preupload, commit;
- download: repo info, list the tree, HEAD and GET ``/<repo>/resolve/<revision>/<file>``.

Preupload answers "regular" for every file, with the stored file's git blob sha1 as ``oid``: that is what the
client compares to skip unchanged files. LFS / Xet transfers are not emulated (the client then uploads through
`hf_xet` to a content store, which has no local stand-in); the tree and the download headers still report LFS
metadata (sha256 etag) for the patterns the Hub stores with LFS, as the Hub does, so a downloaded cache names
weight blobs by sha256 like a real one. Requests to any other endpoint are answered 404 and recorded in
`unexpected_requests`. Use as a context manager: the server thread stops on exit.

`download_into_cache` serves folders as repositories and downloads them with `snapshot_download`: a Hugging
Face cache made by the real client, for tests that load a model by repo id offline.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

from huggingface_hub import ModelCard, constants, snapshot_download

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pth", "*.pt", "*.ckpt", "*.h5", "*.msgpack", "*.onnx")
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS).encode()


def _git_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    summary: str
    description: str
    added: list[str]
    deleted: list[str]


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    private: bool = False


class LocalHub:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.unexpected_requests: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "LocalHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -------------------------------------------------------------------------------------- repo state
    def commit(self, repo_id: str, summary: str, description: str, added: dict[str, bytes], deleted: list[str]):
        with self._lock:
            repo = self.repos[repo_id]
            repo.files.update(added)
            for path in deleted:
                repo.files.pop(path, None)
            parent = repo.commits[-1].oid if repo.commits else ""
            oid = hashlib.sha1(f"{parent}{summary}{sorted(added)}{deleted}{len(repo.commits)}".encode()).hexdigest()
            repo.commits.append(Commit(oid, summary, description, sorted(added), sorted(deleted)))
            return oid

    def create(self, repo_id: str, private: bool = False) -> bool:
        with self._lock:
            if repo_id in self.repos:
                return False
            self.repos[repo_id] = Repo(private=private)
        self.commit(repo_id, "initial commit", "", {".gitattributes": GITATTRIBUTES}, [])
        return True

    @staticmethod
    def is_lfs(path: str) -> bool:
        return any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) for pattern in LFS_PATTERNS)

    def tree_entry(self, path: str, content: bytes) -> dict:
        entry = {"type": "file", "path": path, "size": len(content), "oid": _git_sha1(content)}
        if self.is_lfs(path):
            sha256 = hashlib.sha256(content).hexdigest()
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(content)}\n".encode()
            entry["oid"] = _git_sha1(pointer)
            entry["lfs"] = {"oid": sha256, "size": len(content), "pointerSize": len(pointer)}
        return entry

    # ----------------------------------------------------------------------------------------- HTTP
    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10
            protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _repo(self, parts: list[str]) -> tuple[str, Repo | None]:
                repo_id = f"{parts[2]}/{parts[3]}"
                return repo_id, hub.repos.get(repo_id)

            def _not_found(self, repo_id: str) -> None:
                self._send(404, {"error": f"Repository {repo_id} not found"}, {"X-Error-Code": "RepoNotFound"})

            def do_GET(self):
                url = urlsplit(self.path)
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "tree":
                    repo_id, repo = self._repo(parts)
                    if repo is None:
                        return self._not_found(repo_id)
                    prefix = "/".join(parts[6:])
                    recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
                    entries = []
                    for path in sorted(repo.files):
                        relative = path[len(prefix) + 1 :] if prefix else path
                        if prefix and not path.startswith(prefix + "/"):
                            continue
                        if "/" in relative and not recursive:
                            continue
                        entries.append(hub.tree_entry(path, repo.files[path]))
                    return self._send(200, entries)
                if parts[:2] == ["api", "models"] and (len(parts) == 4 or len(parts) >= 6 and parts[4] == "revision"):
                    repo_id, repo = self._repo(parts)
                    if repo is None:
                        return self._not_found(repo_id)
                    siblings = [{"rfilename": path} for path in sorted(repo.files)]
                    return self._send(200, {"id": repo_id, "sha": repo.commits[-1].oid, "siblings": siblings})
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self._resolve(parts, with_body=True)
                hub.unexpected_requests.append(f"GET {self.path}")
                self._send(404, {"error": "not served by the stand-in"})

            def do_HEAD(self):
                parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self._resolve(parts, with_body=False)
                hub.unexpected_requests.append(f"HEAD {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _resolve(self, parts: list[str], with_body: bool) -> None:
                """``/<namespace>/<name>/resolve/<revision>/<path>``: the file, with the headers the client reads."""
                repo = hub.repos.get(f"{parts[0]}/{parts[1]}")
                content = repo.files.get("/".join(parts[4:])) if repo is not None else None
                if content is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound" if repo is not None else "RepoNotFound")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(content)))
                self.send_header("X-Repo-Commit", repo.commits[-1].oid)
                if hub.is_lfs(parts[-1]):
                    self.send_header("X-Linked-Etag", f'"{hashlib.sha256(content).hexdigest()}"')
                    self.send_header("X-Linked-Size", str(len(content)))
                self.send_header("ETag", f'"{_git_sha1(content)}"')
                self.end_headers()
                if with_body:
                    self.wfile.write(content)

            def do_POST(self):
                url = urlsplit(self.path)
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                body = self._body()
                if parts == ["api", "repos", "create"]:
                    payload = json.loads(body)
                    repo_id = f"{payload['organization']}/{payload['name']}"
                    if not hub.create(repo_id, payload.get("visibility") == "private"):
                        return self._send(
                            409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"}
                        )
                    return self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
                if parts == ["api", "validate-yaml"]:
                    try:
                        ModelCard(json.loads(body)["content"])
                    except Exception as error:  # noqa: BLE001 - reported like the Hub does
                        return self._send(400, {"errors": [{"message": str(error)}]})
                    return self._send(200, {"errors": [], "warnings": []})
                if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    repo_id, repo = self._repo(parts)
                    if repo is None:
                        return self._not_found(repo_id)
                    files = [  # the stored file's git blob sha1: the client skips a file whose content it equals
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                         **({"oid": _git_sha1(repo.files[f["path"]])} if f["path"] in repo.files else {})}
                        for f in json.loads(body)["files"]
                    ]
                    return self._send(200, {"files": files})
                if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo_id, repo = self._repo(parts)
                    if repo is None:
                        return self._not_found(repo_id)
                    header, added, deleted = {}, {}, []
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "header":
                            header = item["value"]
                        elif item["key"] == "file":
                            added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        elif item["key"] == "deletedFile":
                            deleted.append(item["value"]["path"])
                        else:
                            hub.unexpected_requests.append(f"commit operation {item['key']}")
                            return self._send(400, {"error": f"unsupported operation {item['key']}"})
                    missing = [path for path in deleted if path not in repo.files]
                    if missing:
                        return self._send(404, {"error": f"A file with this name doesn't exist: {missing}"})
                    oid = hub.commit(repo_id, header.get("summary", ""), header.get("description", ""), added, deleted)
                    return self._send(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                                            "success": True})
                hub.unexpected_requests.append(f"POST {self.path}")
                self._send(404, {"error": "not served by the stand-in"})

        return Handler


def download_into_cache(folders: Mapping[str, str | Path], cache_dir: str | Path) -> dict[str, Path]:
    """Serve each folder as the repository `repo_id` (the key) and download it with `snapshot_download`.

    Returns repo id -> snapshot folder in `cache_dir` (a Hugging Face hub cache, what ``HF_HUB_CACHE`` names):
    the layout, refs and blob names are the real client's, so ``from_pretrained(repo_id)`` then works offline.
    Files named like the atomic writers' output marker are not served. Works under ``HF_HUB_OFFLINE=1`` too (the
    loopback requests are let through).
    """
    from subcell_hf.utils.atomic_writes import OUTPUT_MARKER

    snapshots = {}
    with LocalHub() as hub, mock.patch.object(constants, "HF_HUB_OFFLINE", False):
        for repo_id, folder in folders.items():
            files = {
                path.relative_to(folder).as_posix(): path.read_bytes()
                for path in sorted(Path(folder).rglob("*")) if path.is_file() and path.name != OUTPUT_MARKER
            }
            hub.create(repo_id)  # stored directly: pushing is tested on its own, here only the download matters
            hub.commit(repo_id, f"Upload {repo_id}", "", files, [])
            snapshots[repo_id] = Path(snapshot_download(repo_id, cache_dir=cache_dir, endpoint=hub.url, token=False))
        if hub.unexpected_requests:
            raise RuntimeError(f"the Hub stand-in got requests it does not serve: {hub.unexpected_requests}")
    return snapshots
