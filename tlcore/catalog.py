"""The dataset catalogue: public datasets tlcore knows by name, and how to fetch them.

Entries come from ``datasets.yaml`` (shipped with tlcore), from extra YAML files named in
``TLCORE_CATALOG`` (``os.pathsep``-separated) and from plugins (the
``register_catalog_entries`` hook). The file format is::

    version: 1
    datasets:
      beans:
        title: ...
        download:
          - url: https://...
            sha256: "..."

:meth:`Catalog.resolve` returns the local folder of a dataset under :func:`data_root`,
downloading it first when it is missing: every file is checked against its sha256 (or, where
the publisher gives only that, its md5) before
use, archives are unpacked into a temporary folder, and that folder is renamed into place
only when everything succeeded.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from tlcore.errors import ConfigError, DuplicateNameError, TlcoreError
from tlcore.registry import Registry

SHIPPED_CATALOG = Path(__file__).with_name("datasets.yaml")
SHIPPED_PLUGIN_NAME = "datasets.yaml"
CATALOG_ENV = "TLCORE_CATALOG"
DATA_ENV = "TLCORE_DATA"
CATALOG_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


#: One folder name: a letter or digit, then letters, digits, '.', '_', '-' (never '.' or '..').
_NAME_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = (
    "a dataset name is a folder name under $TLCORE_DATA: letters, digits, '.', '_' and '-', starting with a "
    "letter or digit, optionally prefixed 'plugin/'; not a path"
)


def check_dataset_name(name: str) -> str:
    """Accept a name that is one folder under the data root, or ``plugin/name`` (two such folders).

    The name becomes the dataset folder when an entry has no ``local``; ``..``, an absolute path or
    a drive letter would put the download outside ``$TLCORE_DATA``.
    """
    segments = name.split("/")
    if len(segments) > 2 or not all(_NAME_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(f"{name!r} is not allowed: {NAME_RULE}")
    return name


def _relative_path(value: str | None) -> str | None:
    """Accept a relative POSIX path that stays inside its parent folder."""
    if value is None:
        return None
    text = value.replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"[A-Za-z]:", text):
        raise ValueError(f"expected a relative folder path, got {value!r}")
    if ".." in PurePosixPath(text).parts:
        raise ValueError(f"'..' is not allowed in {value!r}; use a path inside the dataset folder")
    return text


class DownloadFile(BaseModel):
    """One file to fetch: its URL, its checksum and where it goes.

    ``sha256`` is preferred; ``md5`` is accepted for publishers that give only an MD5 (Zenodo,
    MedMNIST), so the published value is used rather than one computed here.

    Files whose name ends in a zip or tar suffix are unpacked into ``into`` (a folder
    relative to the dataset folder) when ``extract`` is true; other files are copied there.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    sha256: str | None = None
    md5: str | None = None
    filename: str | None = None
    extract: bool = True
    into: str = "."

    @field_validator("sha256")
    @classmethod
    def _check_sha256(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digest = value.strip().lower()
        if not _SHA256.fullmatch(digest):
            raise ValueError(
                f"expected 64 hex characters (a sha256 digest), got {len(digest)} characters {value!r}; "
                "compute it with `sha256sum FILE`"
            )
        return digest

    @field_validator("md5")
    @classmethod
    def _check_md5(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digest = value.strip().lower()
        if not _MD5.fullmatch(digest):
            raise ValueError(f"expected 32 hex characters (an md5 digest), got {len(digest)} characters {value!r}")
        return digest

    @model_validator(mode="after")
    def _check_some_checksum(self) -> DownloadFile:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(
                "a download needs its published checksum: sha256 (64 hex) or, if only that is published, md5 (32 hex)"
            )
        return self

    @property
    def checksum(self) -> tuple[str, str]:
        """``(algorithm, hex digest)``: sha256 when given, else md5."""
        if self.sha256 is not None:
            return "sha256", self.sha256
        assert self.md5 is not None
        return "md5", self.md5

    @field_validator("filename")
    @classmethod
    def _check_filename(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or "\\" in value or value in {".", ".."}):
            raise ValueError(f"expected a plain file name without folders, got {value!r}")
        return value

    @field_validator("into")
    @classmethod
    def _check_into(cls, value: str) -> str:
        return _relative_path(value) or "."

    @property
    def name(self) -> str:
        """The file name: ``filename`` or the last part of the URL path."""
        return self.filename or unquote(PurePosixPath(urlparse(self.url).path).name) or "download"

    @property
    def is_archive(self) -> bool:
        return self.extract and self.name.lower().endswith(_ARCHIVE_SUFFIXES)


class CatalogEntry(BaseModel):
    """A public dataset: where it comes from, how to load it, its licence and citation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    adapter: str = "image-folder"
    adapter_options: dict[str, Any] = Field(default_factory=dict)
    download: list[DownloadFile] = Field(default_factory=list)
    local: str | None = None
    root_subdir: str | None = None
    homepage: str | None = None
    splits: list[str]
    classes: list[str]
    modality: str
    task: str = "classification"
    licence: str
    citation: str
    intended_use: str
    domain: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("dataset names must not be empty")
        return check_dataset_name(value)

    @field_validator("local", "root_subdir")
    @classmethod
    def _check_relative(cls, value: str | None) -> str | None:
        return _relative_path(value)

    @field_validator("adapter_options")
    @classmethod
    def _check_option_paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Options name files inside the dataset folder (a manifest, an image root), never outside it."""
        for key, option in value.items():
            for text in option if isinstance(option, list) else [option]:
                if isinstance(text, str) and ("/" in text or "\\" in text or text == ".."):
                    try:
                        _relative_path(text)
                    except ValueError as exc:
                        raise ValueError(f"{key}: {exc}") from None
        return value


# -- loading files ---------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in the same mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _short(value: Any) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _fields_at(loc: Sequence[int | str]) -> list[str]:
    """Names of the model fields allowed at ``loc`` (an entry-relative location)."""
    model: type[BaseModel] = DownloadFile if len(loc) >= 3 and loc[0] == "download" else CatalogEntry
    return [name for name in model.model_fields if name != "name"]


def _explain(error: ErrorDetails, loc: Sequence[int | str]) -> str:
    """What is wrong at one location and how to fix it, in words."""
    kind = error["type"]
    key = str(loc[-1]) if loc else ""
    if kind == "missing":
        return f"required key is missing; add `{key}:`"
    if kind == "extra_forbidden":
        allowed = _fields_at(loc)
        close = difflib.get_close_matches(key, allowed, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key; {guess}allowed keys: {', '.join(allowed)}"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    expected = _EXPECTED.get(kind)
    got = f"got {type(error['input']).__name__} {_short(error['input'])}"
    if expected:
        return f"expected {expected}, {got}"
    return f"{error['msg'][:1].lower()}{error['msg'][1:]}, {got}"


def _validation_error(path: Path, prefix: tuple[str, ...], exc: ValidationError) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    where = ".".join(str(p) for p in (*prefix, *loc))
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return ConfigError(f"{path}: {where}: {_explain(first, loc)}{more}", f"fix {where} in {path}")


def load_catalog_file(path: Path | str) -> list[CatalogEntry]:
    """Read and validate one catalogue YAML file; any problem raises a one-line :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot read dataset catalogue {path} ({reason})",
            f"check the path, or remove it from {CATALOG_ENV}",
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or type(exc).__name__).replace("\n", " ")
        raise ConfigError(
            f"{path}: invalid YAML{where}: {problem}", "fix the YAML syntax (indentation, quoting, colons)"
        ) from None

    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping with `version: {CATALOG_VERSION}` and `datasets:`, got {type(data).__name__}",
            "see the shipped datasets.yaml for the format",
        )
    unknown = sorted(str(k) for k in data if k not in {"version", "datasets"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown top-level key", "only `version` and `datasets` are allowed")
    if data.get("version") != CATALOG_VERSION:
        raise ConfigError(
            f"{path}: version: expected {CATALOG_VERSION}, got {_short(data.get('version'))}",
            f"put `version: {CATALOG_VERSION}` at the top of the file",
        )
    datasets = data.get("datasets") or {}
    if not isinstance(datasets, dict):
        raise ConfigError(
            f"{path}: datasets: expected a mapping of dataset name to entry, got {type(datasets).__name__}",
            "write `datasets:` followed by indented `NAME:` blocks",
        )

    entries: list[CatalogEntry] = []
    for name, raw in datasets.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{path}: datasets.{name!r}: dataset names must be non-empty strings", "quote the name")
        try:
            check_dataset_name(name)
        except ValueError:
            raise ConfigError(f"{path}: datasets.{name!r}: {NAME_RULE}", "rename the entry, e.g. my_dataset") from None
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{path}: datasets.{name}: expected a mapping of keys (title, splits, ...), got {type(raw).__name__}",
                "see the shipped datasets.yaml for the format",
            )
        if "name" in raw and raw["name"] != name:
            raise ConfigError(
                f"{path}: datasets.{name}.name: {_short(raw['name'])} differs from the key {name!r}",
                "remove `name:`; the key is the name",
            )
        try:
            entries.append(CatalogEntry.model_validate({**raw, "name": name}))
        except ValidationError as exc:
            raise _validation_error(path, ("datasets", name), exc) from None
    return entries


def _env_catalog_files() -> list[Path]:
    value = os.environ.get(CATALOG_ENV, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def data_root() -> Path:
    """Where datasets live: ``$TLCORE_DATA``, else ``~/.cache/tlcore/data``."""
    value = os.environ.get(DATA_ENV)
    if value:
        return Path(value).expanduser()
    return Path.home() / ".cache" / "tlcore" / "data"


# -- downloading -----------------------------------------------------------------------------


def _digest_of(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _unsafe_member(name: str) -> bool:
    """Whether an archive member name is absolute or climbs out with ``..``."""
    text = name.replace("\\", "/")
    return text.startswith("/") or bool(re.match(r"[A-Za-z]:", text)) or ".." in PurePosixPath(text).parts


def _extract(archive: Path, dest: Path, label: str) -> None:
    """Unpack a zip or tar archive into ``dest``, refusing members that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
            bad = [n for n in names if _unsafe_member(n)]
            if not bad:
                shutil.unpack_archive(archive, dest, format="zip")
        else:
            with tarfile.open(archive) as tf:
                bad = [m.name for m in tf.getmembers() if _unsafe_member(m.name)]
                if not bad:
                    if not hasattr(tarfile, "data_filter"):  # Python without PEP 706 filters
                        raise TlcoreError(f"cannot safely extract {label}", "upgrade Python (>= 3.11.4)")
                    # the "data" filter also refuses links and devices that point outside dest
                    tf.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, shutil.ReadError) as exc:
        raise TlcoreError(
            f"refusing to extract {label} ({_one_line(exc)})",
            "the archive is damaged or unsafe; report it to the catalogue maintainers",
        ) from None
    if bad:
        raise TlcoreError(
            f"refusing to extract {label}: member {bad[0]!r} would be written outside the dataset folder",
            "the archive is unsafe; report it to the catalogue maintainers",
        )


@contextmanager
def _progress_bar(enabled: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(nbytes)``: a rich progress bar on stderr, or a no-op when disabled."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class Catalog:
    """All catalogue entries (``registry``, kind "dataset") and the download logic."""

    def __init__(self, registry: Registry[CatalogEntry]) -> None:
        self.registry = registry

    @classmethod
    def load(
        cls,
        plugin_entries: Registry[CatalogEntry] | None = None,
        files: list[Path] | None = None,
    ) -> Catalog:
        """Entries from ``files`` (default: the shipped ``datasets.yaml`` plus ``$TLCORE_CATALOG``),
        then from plugins. A name given twice raises :class:`DuplicateNameError`."""
        if files is None:
            files = [SHIPPED_CATALOG, *_env_catalog_files()]
        registry: Registry[CatalogEntry] = Registry("dataset")
        for path in files:
            shipped = Path(path).resolve() == SHIPPED_CATALOG.resolve()
            source = SHIPPED_PLUGIN_NAME if shipped else str(path)
            for entry in load_catalog_file(path):
                try:
                    registry.add(entry.name, entry, source)
                except DuplicateNameError as exc:
                    exc.hint = f"rename or remove one of the entries (extra files come from {CATALOG_ENV})"
                    raise
        if plugin_entries is not None:
            for item in plugin_entries:
                registry.add(item.name, item.item, item.plugin)
        return cls(registry)

    def get(self, name: str) -> CatalogEntry:
        """The entry called ``name``; an unknown name raises :class:`UnknownNameError`."""
        return self.registry.get(name)

    def folder(self, name: str) -> Path:
        """The dataset folder under :func:`data_root` (``local``, default the name)."""
        entry = self.get(name)
        root = data_root()
        folder = root / (entry.local or entry.name)
        # Entries are validated when they load, but one built with model_construct() (or edited after
        # loading) skips that: never download into, or read from, a folder outside the data root.
        # Lexical, not resolve(): a dataset folder that is a symlink to another disk is allowed.
        inside = os.path.normpath(folder)
        if inside == os.path.normpath(root) or not inside.startswith(os.path.join(os.path.normpath(root), "")):
            raise ConfigError(
                f"catalogue entry {name!r}: its folder {folder} is not inside the data root {root}",
                f"fix the entry's name or local ({NAME_RULE})",
            )
        return folder

    def resolve(self, name: str, download: bool = True, progress: bool = True) -> Path:
        """The local folder the adapter should load, downloading the dataset if it is missing."""
        entry = self.get(name)
        base = self.folder(name)
        target = base / entry.root_subdir if entry.root_subdir else base
        if _non_empty_dir(target):
            return target
        where = entry.homepage or ", ".join(f.url for f in entry.download) or "its publisher"
        inside = f" (as {target})" if entry.root_subdir else ""
        manual = f"download it yourself from {where} and put it under {base}{inside}, or pass --data DIR"
        if not entry.download:
            raise TlcoreError(
                f"dataset {name!r} is not at {target} and is not public-downloadable "
                "(no download is listed in the catalogue)",
                manual,
            )
        if not download:
            raise TlcoreError(f"dataset {name!r} is not at {target} and downloading is switched off", manual)
        if _non_empty_dir(base):
            raise TlcoreError(
                f"{base} exists but has no {entry.root_subdir or 'data'} inside",
                f"remove {base} to download {name!r} again, or pass --data DIR",
            )
        self._install(entry, base, manual, progress)
        if not _non_empty_dir(target):  # pragma: no cover - guarded inside _install
            raise TlcoreError(f"downloaded {name!r} but {target} is missing", "report this catalogue entry")
        return target

    # -- internals ---------------------------------------------------------------------------

    def _install(self, entry: CatalogEntry, base: Path, manual: str, progress: bool) -> None:
        """Download, verify and unpack every file into a temp folder, then rename it to ``base``."""
        downloads = data_root() / ".downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        base.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{base.name}.partial-", dir=base.parent))
        fetched: list[Path] = []
        try:
            for file in entry.download:
                archive = self._fetch(entry, file, downloads, manual, progress)
                fetched.append(archive)
                dest = staging / file.into
                if file.is_archive:
                    try:
                        _extract(archive, dest, file.name)
                    except TlcoreError:
                        archive.unlink(missing_ok=True)  # verified but unusable: do not keep it
                        raise
                else:
                    dest.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(archive, dest / file.name)
            if entry.root_subdir and not _non_empty_dir(staging / entry.root_subdir):
                raise TlcoreError(
                    f"the download of {entry.name!r} has no folder {entry.root_subdir!r}",
                    "the catalogue entry's root_subdir is wrong; report it, or " + manual,
                )
            try:
                if base.exists():
                    base.rmdir()  # empty (checked by the caller)
                staging.replace(base)
            except OSError as exc:
                if not _non_empty_dir(base):
                    raise TlcoreError(
                        f"could not move the download of {entry.name!r} into {base} ({_one_line(exc)})",
                        f"check that {base.parent} is writable, or pass --data DIR",
                    ) from None
                # another process installed it meanwhile; keep theirs
            for archive in fetched:
                archive.unlink(missing_ok=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with suppress(OSError):
                downloads.rmdir()  # only when empty: verified downloads stay for a retry

    def _fetch(self, entry: CatalogEntry, file: DownloadFile, downloads: Path, manual: str, progress: bool) -> Path:
        """Download one file (or reuse a verified earlier download) and return its path."""
        algorithm, expected = file.checksum
        final = downloads / f"{expected[:16]}-{file.name}"
        if final.is_file() and _digest_of(final, algorithm) == expected:
            return final
        offline = f"you seem to be offline: {manual}"
        failed = f"could not download {entry.name} from {file.url}"
        fd, tmp_name = tempfile.mkstemp(prefix=f"{file.name}.", suffix=".part", dir=downloads)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.new(algorithm)
            with os.fdopen(fd, "wb") as out:
                try:
                    response = urllib.request.urlopen(file.url, timeout=_TIMEOUT_S)
                except HTTPError as exc:
                    reason = f"HTTP {exc.code}: {_one_line(exc.reason)}"
                    raise TlcoreError(f"{failed} ({reason})", f"the file may have moved upstream: {manual}") from None
                except URLError as exc:
                    raise TlcoreError(f"{failed} ({_one_line(exc.reason)})", offline) from None
                except ValueError as exc:  # not a URL urllib understands
                    raise TlcoreError(f"{failed} ({_one_line(exc)})", "fix the url in the catalogue") from None
                except (OSError, HTTPException) as exc:
                    raise TlcoreError(f"{failed} ({_one_line(exc) or type(exc).__name__})", offline) from None
                with response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    with _progress_bar(progress, f"{entry.name}: {file.name}", total) as advance:
                        while True:
                            try:
                                chunk = response.read(_CHUNK)
                            except (OSError, HTTPException) as exc:
                                reason = _one_line(exc) or type(exc).__name__
                                raise TlcoreError(f"{failed} ({reason})", offline) from None
                            if not chunk:
                                break
                            out.write(chunk)
                            digest.update(chunk)
                            advance(len(chunk))
            actual = digest.hexdigest()
            if actual != expected:
                raise TlcoreError(
                    f"checksum mismatch for {file.url}: expected {algorithm} {expected}, got {actual}",
                    f"the file may be corrupt or changed upstream; it was deleted. Try again, or {manual}",
                )
            tmp.replace(final)
            return final
        finally:
            tmp.unlink(missing_ok=True)


def _non_empty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())
