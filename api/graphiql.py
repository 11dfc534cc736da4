"""GraphiQL at /graphql with its scripts and styles served from here, not from a CDN.

Strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from unpkg.com, which
a closed network (CI among them) cannot reach. `python -m api.graphiql fetch` (run by `make`)
takes the very files that page names, at the versions it pins, from the npm registry with
npm, into ASSETS_DIR inside the Python environment; the page then loads them from /graphiql/
on this server. The page keeps Strawberry's subresource-integrity hashes: the fetch checks
them and the browser checks them again, so what runs is byte for byte what Strawberry
pinned, and a Strawberry upgrade brings its own list. Until the files are there (a machine
without npm), the page is Strawberry's own, loading from the CDN.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html

CDN = "https://unpkg.com/"
# Installed with the environment, like its Python packages (`make clean` removes both).
ASSETS_DIR = Path(sys.prefix) / "share" / "graphiql"
URL_PREFIX = "/graphiql/"

_TAG = re.compile(r"<(?:script|link)\b[^>]*>")
_CDN_URL = re.compile(
    r'(?:src|href)="https://unpkg\.com/(?P<package>(?:@[\w.-]+/)?[\w.-]+)@(?P<version>[\w.-]+)/'
    r'(?P<file>[\w./-]+)"'
)
_INTEGRITY = re.compile(r'integrity="(?P<algorithm>sha256|sha384|sha512)-(?P<digest>[^"]+)"')
# Versioned paths never change content.
_ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}


@dataclass(frozen=True)
class Asset:
    """One file the GraphiQL page loads: a file inside an npm package at a pinned version."""

    package: str  # "react", "@graphiql/plugin-explorer"
    version: str
    file: str  # inside the package: "umd/react.production.min.js"
    algorithm: str | None  # of the page's integrity attribute
    digest: str | None  # base64, as in that attribute

    @property
    def path(self) -> str:
        """Under the CDN, ASSETS_DIR and URL_PREFIX alike: "react@18.2.0/umd/react…js"."""
        return f"{self.package}@{self.version}/{self.file}"

    def matches(self, data: bytes) -> bool:
        if self.algorithm is None or self.digest is None:
            return False
        actual = base64.b64encode(hashlib.new(self.algorithm, data).digest()).decode()
        return actual == self.digest


@cache
def assets() -> tuple[Asset, ...]:
    """The files Strawberry's GraphiQL page loads from the CDN, with their integrity hashes."""
    found = []
    for tag in _TAG.findall(get_graphql_ide_html("graphiql")):
        url = _CDN_URL.search(tag)
        if url is None or ".." in url["file"].split("/"):
            continue
        integrity = _INTEGRITY.search(tag)
        found.append(
            Asset(
                url["package"],
                url["version"],
                url["file"],
                integrity["algorithm"] if integrity else None,
                integrity["digest"] if integrity else None,
            )
        )
    return tuple(found)


def present(directory: Path | None = None) -> bool:
    """Whether every asset is in `directory`, ASSETS_DIR by default (the fetch writes only
    verified files)."""
    directory = directory or ASSETS_DIR
    return bool(assets()) and all((directory / a.path).is_file() for a in assets())


def page_response(request: Request) -> HTMLResponse:
    """The GraphiQL page, loading its files from this server when they were fetched."""
    html = get_graphql_ide_html("graphiql")
    if present():
        html = html.replace(CDN, request.scope.get("root_path", "") + URL_PREFIX)
    return HTMLResponse(html)


async def asset(request: Request) -> Response:
    """One of the page's files; nothing else under ASSETS_DIR is served."""
    wanted = request.path_params["path"]
    if wanted not in {a.path for a in assets()} or not (ASSETS_DIR / wanted).is_file():
        return PlainTextResponse("Not found", status_code=404)
    return FileResponse(ASSETS_DIR / wanted, headers=_ASSET_HEADERS)


ROUTES: list[Route] = [Route(URL_PREFIX + "{path:path}", asset, methods=["GET", "HEAD"])]


# --- the fetch ------------------------------------------------------------------------------


def _verified(path: Path, asset: Asset) -> bool:
    return path.is_file() and asset.matches(path.read_bytes())


def _read_member(tarball: Path, file: str) -> bytes:
    """`file` of an npm package tarball (its files sit under one top folder, "package/")."""
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.partition("/")[2] == file:
                extracted = archive.extractfile(member)
                if extracted is not None:
                    return extracted.read()
    raise RuntimeError(f"{tarball.name} has no {file}")


def fetch(directory: Path | None = None, *, npm: str = "npm") -> list[str]:
    """Put each asset that is missing from `directory` (ASSETS_DIR by default) there, from
    its npm package (`npm pack`, which checks the tarball against the registry's hash), and
    check it against the page's integrity hash. Returns the paths written; raises when a
    file does not match."""
    directory = directory or ASSETS_DIR
    missing = [a for a in assets() if not _verified(directory / a.path, a)]
    if not missing:
        return []
    for asset_ in missing:
        if asset_.digest is None:
            raise RuntimeError(f"the GraphiQL page names {asset_.path} without an integrity hash")
    specs = sorted({f"{a.package}@{a.version}" for a in missing})
    with tempfile.TemporaryDirectory() as tmp:
        # The arguments are npm's path and the package specs of Strawberry's own page.
        packed = subprocess.run(  # noqa: S603
            [npm, "pack", *specs, "--pack-destination", tmp, "--json", "--ignore-scripts"],
            check=True,
            capture_output=True,
            text=True,
        )
        tarballs = {
            entry["id"]: Path(tmp) / entry["filename"] for entry in json.loads(packed.stdout)
        }
        for asset_ in missing:
            data = _read_member(tarballs[f"{asset_.package}@{asset_.version}"], asset_.file)
            if not asset_.matches(data):
                raise RuntimeError(f"{asset_.path} does not match the page's integrity hash")
            target = directory / asset_.path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(data)
            partial.replace(target)
    return [a.path for a in missing]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.graphiql", description="Fetch GraphiQL's files to serve them here."
    )
    parser.add_argument("command", choices=["fetch"])
    parser.parse_args(argv)
    npm = shutil.which("npm")
    if npm is None:
        print(
            "npm is not installed: GraphiQL will load its files from the CDN until"
            " `python -m api.graphiql fetch` has run with npm.",
            file=sys.stderr,
        )
        return 0
    try:
        written = fetch(npm=npm)
    except subprocess.CalledProcessError as exc:
        print(f"npm pack failed:\n{exc.stderr}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"GraphiQL's files: {exc}", file=sys.stderr)
        return 1
    if written:
        print(f"GraphiQL's files: {len(written)} fetched into {ASSETS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
