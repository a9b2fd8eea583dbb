"""Catalogue downloads checked against a published MD5 when that is all the publisher gives (Zenodo, MedMNIST)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tlcore.catalog import Catalog, DownloadFile, load_catalog_file
from tlcore.errors import ConfigError, TlcoreError

ENTRY = {"title": "Toy", "splits": ["train"], "classes": ["a", "b"], "modality": "x", "licence": "CC0-1.0",
         "citation": "none", "intended_use": "tests", "adapter": "image-folder"}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLCORE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("TLCORE_CATALOG", raising=False)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # no request log on stderr
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(Quiet, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()


def catalog(tmp_path: Path, download: list[dict[str, object]], name: str = "extra.yaml") -> Catalog:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "datasets": {"toy": {**ENTRY, "download": download}}}))
    return Catalog.load(files=[path])


def test_md5_is_accepted_and_sha256_preferred() -> None:
    md5_only = DownloadFile(url="https://x/a.npz", md5="28209EDA62FECD6E6A2D98B1501BB15F")
    assert md5_only.checksum == ("md5", "28209eda62fecd6e6a2d98b1501bb15f")
    both = DownloadFile(url="https://x/a.npz", md5="0" * 32, sha256="1" * 64)
    assert both.checksum == ("sha256", "1" * 64)


def test_a_download_without_any_checksum_or_a_bad_md5_is_refused(tmp_path: Path) -> None:
    for download, needle in (({"url": "https://x/a.zip"}, "needs its published checksum"),
                             ({"url": "https://x/a.zip", "md5": "abc"}, "expected 32 hex characters")):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "datasets": {"toy": {**ENTRY, "download": [download]}}}))
        with pytest.raises(ConfigError, match=needle) as info:
            load_catalog_file(path)
        assert "datasets.toy.download.0" in str(info.value)


def test_download_is_verified_against_md5(tmp_path: Path, server: tuple[str, Path]) -> None:
    url, served = server
    payload = b"npz bytes" * 100
    (served / "toy.npz").write_bytes(payload)
    good = hashlib.md5(payload).hexdigest()
    folder = catalog(tmp_path, [{"url": f"{url}/toy.npz", "md5": good}]).resolve("toy", progress=False)
    assert (folder / "toy.npz").read_bytes() == payload

    bad = catalog(tmp_path, [{"url": f"{url}/toy.npz", "md5": "0" * 32}], "bad.yaml")
    shutil.rmtree(folder)
    with pytest.raises(TlcoreError, match=f"expected md5 {'0' * 32}, got {good}"):
        bad.resolve("toy", progress=False)
