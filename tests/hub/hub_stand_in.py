"""A local, in-memory stand-in for the few Hub API endpoints that `subcell_hf.hub.publish.push_release` uses.

The real `huggingface_hub.HfApi` talks to it over HTTP on 127.0.0.1 (`HfApi(endpoint=hub.url)`), so the test
exercises the library's real requests: create repo, list the tree, validate the card's YAML, preupload, commit.
Every file is accepted as a regular (non-LFS) upload, but the tree reports LFS metadata for the patterns the Hub
stores with LFS, as the Hub does. Requests to any other endpoint are answered 404 and recorded in
`unexpected_requests`. Use as a context manager: the server thread stops on exit.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from huggingface_hub import ModelCard

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

    def tree_entry(self, path: str, content: bytes) -> dict:
        entry = {"type": "file", "path": path, "size": len(content), "oid": _git_sha1(content)}
        if any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) for pattern in LFS_PATTERNS):
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
                if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
                    repo_id, repo = self._repo(parts)
                    if repo is None:
                        return self._not_found(repo_id)
                    siblings = [{"rfilename": path} for path in sorted(repo.files)]
                    return self._send(200, {"id": repo_id, "sha": repo.commits[-1].oid, "siblings": siblings})
                hub.unexpected_requests.append(f"GET {self.path}")
                self._send(404, {"error": "not served by the stand-in"})

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
                    files = [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
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
