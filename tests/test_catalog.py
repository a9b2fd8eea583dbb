"""The dataset catalogue: YAML validation, merging, and safe, verified downloads (no network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tlcore.catalog import (
    SHIPPED_CATALOG,
    Catalog,
    CatalogEntry,
    DownloadFile,
    data_root,
    load_catalog_file,
)
from tlcore.errors import ConfigError, DuplicateNameError, TlcoreError, UnknownNameError
from tlcore.registry import Registry

MINIMAL: dict[str, object] = {
    "title": "Toy",
    "splits": ["train", "val"],
    "classes": ["a", "b"],
    "modality": "rgb",
    "licence": "CC0-1.0",
    "citation": "none",
    "intended_use": "tests",
}


def write_catalog(path: Path, datasets: dict[str, dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "datasets": datasets}), encoding="utf-8")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("TLCORE_DATA", str(data))
    monkeypatch.delenv("TLCORE_CATALOG", raising=False)
    return data


def catalog_with(tmp_path: Path, **entries: dict[str, object]) -> Catalog:
    return Catalog.load(files=[write_catalog(tmp_path / "extra.yaml", dict(entries))])


# -- the shipped catalogue -------------------------------------------------------------------


def test_shipped_catalog_is_a_real_file_identical_to_the_top_level_one() -> None:
    # Two real copies, not a symlink: tlcore/datasets.yaml is package data (a wheel must hold the file
    # itself), and the repository keeps datasets.yaml at its top for readers. Byte equality keeps them one
    # catalogue; loading the top-level file in a checkout instead would give tests a different code path.
    root = Path(__file__).parents[1]
    top_level, package_copy = root / "datasets.yaml", root / "tlcore" / "datasets.yaml"
    assert (SHIPPED_CATALOG.parent.name, SHIPPED_CATALOG.name) == ("tlcore", "datasets.yaml")
    assert not package_copy.is_symlink() and not top_level.is_symlink()
    assert package_copy.read_bytes() == top_level.read_bytes(), "edit both copies: cp datasets.yaml tlcore/"


def test_shipped_catalog_validates_and_has_beans() -> None:
    assert SHIPPED_CATALOG.name == "datasets.yaml"
    entries = {e.name: e for e in load_catalog_file(SHIPPED_CATALOG)}
    beans = entries["beans"]
    assert beans.classes == ["angular_leaf_spot", "bean_rust", "healthy"]
    assert beans.counts == {"train": 1034, "val": 133, "test": 128}
    assert beans.adapter == "image-folder"
    assert beans.adapter_options == {"split_aliases": {"validation": "val"}}
    assert [f.name for f in beans.download] == ["train.zip", "validation.zip", "test.zip"]
    assert all(len(f.sha256) == 64 and f.is_archive for f in beans.download)
    chest = entries["chest_xray_pneumonia"]
    assert chest.classes == ["NORMAL", "PNEUMONIA"]
    assert chest.licence == "CC BY 4.0"
    assert chest.download == [] and chest.homepage


def test_default_load_registers_shipped_entries_under_datasets_yaml() -> None:
    catalog = Catalog.load()
    assert catalog.registry.kind == "dataset"
    assert catalog.registry.entry("beans").plugin == "datasets.yaml"
    assert catalog.get("beans").title.startswith("iBean")
    with pytest.raises(UnknownNameError, match="did you mean 'beans'"):
        catalog.get("bean")


# -- validation errors -----------------------------------------------------------------------


def one_line_config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_catalog_file(path)
    text = str(info.value)
    assert "\n" not in text
    assert str(path) in text
    return text


def test_malformed_yaml_is_one_line_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\ndatasets:\n  toy: {title: [unclosed\n", encoding="utf-8")
    text = one_line_config_error(path)
    assert "invalid YAML at line" in text


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("version: 1\ndatasets:\n  toy: {title: a}\n  toy: {title: b}\n", encoding="utf-8")
    assert "given twice" in one_line_config_error(path)


def test_wrong_type_names_key_path(tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "c.yaml", {"toy": {**MINIMAL, "counts": {"train": "many"}}})
    text = one_line_config_error(path)
    assert "datasets.toy.counts.train" in text
    assert "expected an integer" in text and "'many'" in text


def test_bad_sha256_names_key_path(tmp_path: Path) -> None:
    bad = {**MINIMAL, "download": [{"url": "https://example.org/x.zip", "sha256": "abc123"}]}
    text = one_line_config_error(write_catalog(tmp_path / "c.yaml", {"toy": bad}))
    assert "datasets.toy.download.0.sha256" in text
    assert "expected 64 hex characters" in text


def test_unknown_key_names_key_path_and_suggests(tmp_path: Path) -> None:
    text = one_line_config_error(write_catalog(tmp_path / "c.yaml", {"toy": {**MINIMAL, "licnese": "MIT"}}))
    assert "datasets.toy.licnese" in text
    assert "unknown key" in text and "did you mean 'licence'" in text


def test_missing_key_and_bad_version(tmp_path: Path) -> None:
    entry = {k: v for k, v in MINIMAL.items() if k != "licence"}
    text = one_line_config_error(write_catalog(tmp_path / "c.yaml", {"toy": entry}))
    assert "datasets.toy.licence" in text and "missing" in text
    path = tmp_path / "v.yaml"
    path.write_text("version: 2\ndatasets: {}\n", encoding="utf-8")
    assert "version" in one_line_config_error(path)


def test_path_traversal_in_folders_is_refused(tmp_path: Path) -> None:
    text = one_line_config_error(write_catalog(tmp_path / "c.yaml", {"toy": {**MINIMAL, "local": "../x"}}))
    assert "datasets.toy.local" in text and ".." in text


@pytest.mark.parametrize(
    "name", ["../../escaped", "..", ".", "/tmp/escaped", "a/../b", "a/b/c", "C:escaped", "a\\b", ".hidden", "a b"]
)
def test_dataset_names_that_are_paths_are_refused(tmp_path: Path, name: str) -> None:
    text = one_line_config_error(write_catalog(tmp_path / "c.yaml", {name: MINIMAL}))
    assert f"datasets.{name!r}" in text and "not a path" in text


@pytest.mark.parametrize("name", ["beans", "plant_village", "my.data-set2", "derm/example", "3d-volumes"])
def test_plain_and_plugin_prefixed_names_are_accepted(tmp_path: Path, name: str) -> None:
    catalog = catalog_with(tmp_path, **{name: MINIMAL})
    assert catalog.folder(name) == data_root() / name


def test_a_plugin_entry_named_like_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="not a path"):
        CatalogEntry.model_validate({**MINIMAL, "name": "../../escaped"})


@pytest.mark.parametrize(("name", "local"), [("../../escaped", None), ("ABSOLUTE", None), ("toy", "../../escaped")])
def test_a_folder_outside_the_data_root_is_refused_even_for_unvalidated_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, local: str | None
) -> None:
    monkeypatch.setenv("TLCORE_DATA", str(tmp_path / "a" / "b"))  # ../../escaped is tmp_path/escaped
    name = str(tmp_path / "escaped") if name == "ABSOLUTE" else name
    archive = make_zip(tmp_path / "toy.zip", {"train/a/1.png": b"x"})
    download = DownloadFile(url=archive.as_uri(), sha256=sha256(archive))
    # model_construct skips validation, as an entry edited after loading would: the folder check still holds.
    entry = CatalogEntry.model_construct(
        **{**MINIMAL, "name": name, "local": local, "root_subdir": None, "download": [download]}
    )
    registry: Registry[CatalogEntry] = Registry("dataset")
    registry.add(name, entry, "test")
    with pytest.raises(ConfigError, match="not inside the data root"):
        Catalog(registry).resolve(name, progress=False)
    assert not (tmp_path / "escaped").exists()


# -- merging files and plugins ---------------------------------------------------------------


def test_tlcore_catalog_env_adds_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = write_catalog(tmp_path / "one.yaml", {"toy_one": MINIMAL})
    two = write_catalog(tmp_path / "two.yaml", {"toy_two": MINIMAL})
    monkeypatch.setenv("TLCORE_CATALOG", f"{one}{os.pathsep}{two}")
    catalog = Catalog.load()
    assert {"beans", "toy_one", "toy_two"} <= set(catalog.registry.names())
    assert catalog.registry.entry("toy_one").plugin == str(one)


def test_duplicate_names_between_files_name_both(tmp_path: Path) -> None:
    one = write_catalog(tmp_path / "one.yaml", {"toy": MINIMAL})
    two = write_catalog(tmp_path / "two.yaml", {"toy": MINIMAL})
    with pytest.raises(DuplicateNameError) as info:
        Catalog.load(files=[one, two])
    assert str(one) in str(info.value) and str(two) in str(info.value)


def test_plugin_entries_keep_plugin_names_and_clash_with_files(tmp_path: Path) -> None:
    plugins: Registry[CatalogEntry] = Registry("dataset")
    plugins.add("derm_toy", CatalogEntry.model_validate({**MINIMAL, "name": "derm_toy"}), "tlcore-derm")
    catalog = Catalog.load(plugin_entries=plugins)
    assert catalog.registry.entry("derm_toy").plugin == "tlcore-derm"
    clash: Registry[CatalogEntry] = Registry("dataset")
    clash.add("beans", CatalogEntry.model_validate({**MINIMAL, "name": "beans"}), "tlcore-agri")
    with pytest.raises(DuplicateNameError, match=r"datasets\.yaml.*tlcore-agri"):
        Catalog.load(plugin_entries=clash)


# -- resolve and download --------------------------------------------------------------------


def test_data_root_defaults(monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> None:
    assert data_root() == isolated_env
    monkeypatch.delenv("TLCORE_DATA")
    assert data_root() == Path.home() / ".cache" / "tlcore" / "data"


def test_resolve_existing_local_folder(tmp_path: Path, isolated_env: Path) -> None:
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "local": "toy_data", "root_subdir": "inner"})
    target = isolated_env / "toy_data" / "inner"
    (target / "train" / "a").mkdir(parents=True)
    (target / "train" / "a" / "1.jpg").write_bytes(b"x")
    assert catalog.resolve("toy", download=False) == target


def test_resolve_without_public_download_says_where_to_put_it(tmp_path: Path, isolated_env: Path) -> None:
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "homepage": "https://example.org/toy"})
    with pytest.raises(TlcoreError) as info:
        catalog.resolve("toy")
    text = str(info.value)
    assert "not public-downloadable" in text
    assert "https://example.org/toy" in text and str(isolated_env / "toy") in text


@pytest.mark.parametrize("progress", [False, True])
def test_download_from_file_url_extracts_and_resolves(tmp_path: Path, isolated_env: Path, progress: bool) -> None:
    archive = make_zip(tmp_path / "toy.zip", {"toy/train/a/1.jpg": b"one", "toy/val/b/2.jpg": b"two"})
    files = [{"url": archive.as_uri(), "sha256": sha256(archive), "into": "."}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files, "root_subdir": "toy"})
    target = catalog.resolve("toy", progress=progress)
    assert target == isolated_env / "toy" / "toy"
    assert (target / "train" / "a" / "1.jpg").read_bytes() == b"one"
    assert (target / "val" / "b" / "2.jpg").read_bytes() == b"two"
    # nothing left over: no staging folder, no downloaded archive
    assert sorted(p.name for p in isolated_env.iterdir()) == ["toy"]
    # a second call finds the folder and does not download again
    archive.unlink()
    assert catalog.resolve("toy") == target


def test_download_of_plain_file_and_into(tmp_path: Path, isolated_env: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n", encoding="utf-8")
    files = [{"url": labels.as_uri(), "sha256": sha256(labels).upper(), "into": "meta"}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files})
    target = catalog.resolve("toy", progress=False)
    assert (target / "meta" / "labels.csv").read_text(encoding="utf-8") == "path,label\n"


def test_wrong_sha256_raises_and_leaves_nothing(tmp_path: Path, isolated_env: Path) -> None:
    archive = make_zip(tmp_path / "toy.zip", {"train/a/1.jpg": b"one"})
    files = [{"url": archive.as_uri(), "sha256": "0" * 64}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files})
    with pytest.raises(TlcoreError) as info:
        catalog.resolve("toy", progress=False)
    text = str(info.value)
    assert "expected sha256 " + "0" * 64 in text and sha256(archive) in text
    assert "corrupt or changed upstream" in text
    assert not (isolated_env / "toy").exists()
    assert [p for p in isolated_env.rglob("*") if p.is_file()] == []


def test_unreachable_url_gives_offline_hint(tmp_path: Path, isolated_env: Path) -> None:
    files = [{"url": "http://127.0.0.1:9/x.zip", "sha256": "0" * 64}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files, "homepage": "https://example.org/toy"})
    with pytest.raises(TlcoreError) as info:
        catalog.resolve("toy", progress=False)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("could not download toy from http://127.0.0.1:9/x.zip (")
    assert "you seem to be offline" in text and "https://example.org/toy" in text
    assert str(isolated_env / "toy") in text and "--data DIR" in text
    assert not (isolated_env / "toy").exists()


def test_download_disabled_raises(tmp_path: Path) -> None:
    files = [{"url": "http://127.0.0.1:9/x.zip", "sha256": "0" * 64}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files})
    with pytest.raises(TlcoreError, match="downloading is switched off"):
        catalog.resolve("toy", download=False)


def test_zip_with_parent_member_is_refused(tmp_path: Path, isolated_env: Path) -> None:
    archive = make_zip(tmp_path / "evil.zip", {"train/a/1.jpg": b"ok", "../evil": b"pwned"})
    files = [{"url": archive.as_uri(), "sha256": sha256(archive)}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files})
    with pytest.raises(TlcoreError, match=r"refusing to extract evil\.zip: member '\.\./evil'"):
        catalog.resolve("toy", progress=False)
    assert not (isolated_env / "toy").exists()
    assert [p for p in isolated_env.rglob("*") if p.is_file()] == []
    assert not list(tmp_path.rglob("evil")) and not (isolated_env.parent / "evil").exists()


@pytest.mark.parametrize(
    ("member", "link"),
    [("/tmp/tlcore-evil", None), ("a/../../tlcore-evil", None), ("escape", "../../outside")],
    ids=["absolute", "parent", "symlink"],
)
def test_unsafe_tar_is_refused(tmp_path: Path, isolated_env: Path, member: str, link: str | None) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo(member)
        if link is None:
            info.size = 3
            tf.addfile(info, io.BytesIO(b"bad"))
        else:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tf.addfile(info)
    files = [{"url": archive.as_uri(), "sha256": sha256(archive)}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files})
    with pytest.raises(TlcoreError, match=r"refusing to extract evil\.tar\.gz"):
        catalog.resolve("toy", progress=False)
    assert not (isolated_env / "toy").exists()
    assert not (isolated_env.parent / "tlcore-evil").exists()
    assert [p for p in isolated_env.rglob("*") if p.is_file()] == []


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server (127.0.0.1, random port) serving a temp folder."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_download_and_404_hint(tmp_path: Path, isolated_env: Path, http_dir: tuple[str, Path]) -> None:
    url, root = http_dir
    archive = make_zip(root / "toy.zip", {"train/a/1.jpg": b"one"})
    missing = [{"url": f"{url}/gone.zip", "sha256": sha256(archive)}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": missing})
    with pytest.raises(TlcoreError, match=r"\(HTTP 404: .*moved upstream"):
        catalog.resolve("toy", progress=False)
    good = [{"url": f"{url}/toy.zip", "sha256": sha256(archive)}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": good})
    assert (catalog.resolve("toy", progress=True) / "train" / "a" / "1.jpg").read_bytes() == b"one"


def test_verified_download_is_reused_after_a_failed_install(tmp_path: Path, isolated_env: Path) -> None:
    first = make_zip(tmp_path / "first.zip", {"train/a/1.jpg": b"one"})
    first_spec = {"url": first.as_uri(), "sha256": sha256(first)}
    broken = {"url": "http://127.0.0.1:9/second.zip", "sha256": "0" * 64}
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": [first_spec, broken]})
    with pytest.raises(TlcoreError, match="you seem to be offline"):
        catalog.resolve("toy", progress=False)
    assert not (isolated_env / "toy").exists()
    assert [p.name for p in (isolated_env / ".downloads").iterdir()] == [f"{sha256(first)[:16]}-first.zip"]
    first.unlink()  # only the verified copy in .downloads can supply it now
    second = make_zip(tmp_path / "second.zip", {"val/b/2.jpg": b"two"})
    fixed = {"url": second.as_uri(), "sha256": sha256(second)}
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": [first_spec, fixed]})
    target = catalog.resolve("toy", progress=False)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.jpg")) == [
        "train/a/1.jpg",
        "val/b/2.jpg",
    ]
    assert not (isolated_env / ".downloads").exists()


def test_invalid_url_is_a_catalogue_error(tmp_path: Path) -> None:
    files = [{"url": "not-a-url.zip", "sha256": "0" * 64}]
    catalog = catalog_with(tmp_path, toy={**MINIMAL, "download": files})
    with pytest.raises(TlcoreError, match="fix the url in the catalogue"):
        catalog.resolve("toy", progress=False)
