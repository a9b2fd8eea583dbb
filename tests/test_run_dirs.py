"""Runs are never lost or mixed: a run directory holds the files of one run, or is refused in one line.

``tl train`` refuses a non-empty ``--output`` (``--overwrite`` replaces a run, never a folder of other
files), marks a run unfinished until its last file is written, checks a ``--resume`` before it writes
anything, and keeps runs out of data folders. The last test drives random sequences of train, interrupt,
resume, overwrite and evaluate, and checks after every step that each run directory is a finished run
whose files agree, or an unfinished one that every reader refuses."""

from __future__ import annotations

import builtins
import csv
import errno
import hashlib
import io
import json
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

Tl = Callable[..., tuple[int, str, str]]
SMALL = ["--set", "backbone=test_resnet", "--set", "weights=none", "--set", "image_size=32"]
QUIET = ["--set", "batch_size=8", "--set", "progress=false"]
FE = ["--preset", "feature-extraction", *SMALL, *QUIET]
#: One epoch by default; 9 train images in batches of 8 (the last batch of one is dropped for BatchNorm).
FT = ["--preset", "fine-tuning", *SMALL, *QUIET, "--set", "strategy=full", "--set", "tta=false", "--set", "epochs=1"]
TWO = {"red": (210, 35, 35), "blue": (40, 50, 210)}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("run-dirs")
    return {
        "three": make_folder(base / "three", {"train": 3, "val": 1, "test": 1}),
        "two": make_folder(base / "two", {"train": 3, "val": 1, "test": 1}, classes=TWO, seed=1),
    }


@pytest.fixture(scope="module")
def pristine(
    datasets: dict[str, Path], tl_module: Callable[..., int], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """One finished feature-extraction run and one finished fine-tuning run, trained once for the module."""
    base = tmp_path_factory.mktemp("pristine")
    runs = {"fe": base / "fe", "ft": base / "ft"}
    assert tl_module("train", "--data", datasets["three"], "--output", runs["fe"], *FE) == 0
    assert tl_module("train", "--data", datasets["three"], "--output", runs["ft"], *FT) == 0
    return runs


@pytest.fixture
def finished(pristine: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """``finished("fe" | "ft")``: a copy of a finished run at ``tmp_path/run``."""

    def copy(kind: str) -> Path:
        run = tmp_path / "run"
        shutil.copytree(pristine[kind], run)
        return run

    return copy


def one_error(err: str, *needles: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def train(tl: Tl, data: Path, run: Path, *extra: str, recipe: list[str] = FE) -> tuple[int, str, str]:
    return tl("train", "--data", data, "--output", run, *recipe, *extra)


def interrupt_at(mp: pytest.MonkeyPatch, target: str, after: int = 0) -> None:
    """Ctrl-C inside ``target`` (module:function), once it has been called ``after`` times."""
    module_name, name = target.split(":")
    module = __import__(module_name, fromlist=[name])
    real = getattr(module, name)
    calls = {"n": 0}

    def stop(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    mp.setattr(module, name, stop)


# -- a finished run is never overwritten or mixed ---------------------------------------------------------


def test_a_finished_run_is_refused_and_left_as_it_was(
    tl: Tl, finished: Callable[[str], Path], datasets: dict[str, Path]
) -> None:
    run = finished("fe")
    before = snapshot(run)
    code, _, err = train(tl, datasets["two"], run)
    assert code == 2
    one_error(err, "already holds a finished run", "--overwrite")
    assert snapshot(run) == before


def test_overwrite_removes_every_file_of_the_old_run(
    tl: Tl, finished: Callable[[str], Path], datasets: dict[str, Path]
) -> None:
    run = finished("ft")
    assert tl("evaluate", run)[0] == 0  # evaluation-test.json: the old run's too
    code, _, err = train(tl, datasets["two"], run, "--overwrite")
    assert code == 0, err
    names = {p.name for p in run.iterdir()}
    assert not names & {"best.safetensors", "checkpoint.safetensors", "checkpoint_state.pt", "metrics.csv"}
    assert "evaluation-test.json" not in names and "incomplete.json" not in names
    assert_one_finished_run(run)


def test_overwrite_refuses_a_folder_that_holds_no_run(tl: Tl, tmp_path: Path, datasets: dict[str, Path]) -> None:
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    code, _, err = train(tl, datasets["two"], folder, "--overwrite")
    assert code == 2
    one_error(err, "holds no tlcore run")
    assert (folder / "chapter1.tex").read_text() == "precious"


def test_overwrite_never_removes_a_users_files_beside_a_run(
    tl: Tl, finished: Callable[[str], Path], datasets: dict[str, Path]
) -> None:
    run = finished("fe")
    (run / "notes.md").write_text("what I tried")
    before = snapshot(run)
    code, _, err = train(tl, datasets["two"], run, "--overwrite")
    assert code == 2
    one_error(err, "notes.md", "nothing was removed")
    assert snapshot(run) == before


def test_an_overwrite_interrupted_after_its_config_leaves_a_marked_run_that_readers_refuse(
    tl: Tl, finished: Callable[[str], Path], datasets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = finished("fe")
    with monkeypatch.context() as mp:
        interrupt_at(mp, "tlcore.training.run:_fit_features")  # the new config.yaml is written, the model not yet
        code, _, _ = train(tl, datasets["two"], run, "--overwrite")
    assert code == 130
    assert yaml.safe_load((run / "config.yaml").read_text())["classes"] == ["blue", "red"]
    assert not (run / "model.json").exists() and not (run / "report.json").exists()  # the old run's are gone
    for argv in (["evaluate", run], ["report", run], ["export", run], ["predict", run, __file__]):
        code, _, err = tl(*argv)
        assert code == 2, (argv, err)
        one_error(err, "holds an unfinished run")
    code, _, err = train(tl, datasets["two"], run)
    assert code == 2
    one_error(err, "unfinished run", "--resume", "--overwrite")
    assert train(tl, datasets["two"], run, "--overwrite")[0] == 0
    assert_one_finished_run(run)


def test_an_interrupted_fine_tuning_run_is_refused_by_readers_and_resumes(
    tl: Tl, tmp_path: Path, datasets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as mp:
        interrupt_at(mp, "tlcore.training.finetune:_checkpoint", after=1)  # Ctrl-C as epoch 2 is saved
        code, _, _ = train(tl, datasets["three"], run, "--set", "epochs=2", recipe=FT)
    assert code == 130
    assert (run / "checkpoint_state.pt").exists() and (run / "incomplete.json").exists()
    code, _, err = tl("evaluate", run)
    assert code == 2
    one_error(err, "unfinished run", f"tl train --resume {run}")
    code, _, err = tl("train", "--resume", run)
    assert code == 0, err
    assert "resuming after epoch 1" in err
    assert_one_finished_run(run)
    assert tl("evaluate", run)[0] == 0


# -- --resume is checked before anything is written --------------------------------------------------------


@pytest.fixture
def finished_ft(finished: Callable[[str], Path]) -> Path:
    return finished("ft")


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--data", "two"], ("the data has 2 classes (blue, red)", "trained on 3 classes")),
        (["--set", "backbone=resnet18"], ("backbone='resnet18'", "trained with backbone='test_resnet'")),
        (["--set", "technique=feature-extraction"], ("technique='feature-extraction'",)),
        (["--set", "head=mlp"], ("head='mlp'",)),
    ],
    ids=["other-classes", "other-backbone", "other-technique", "other-head"],
)
def test_a_resume_that_cannot_continue_is_refused_before_anything_is_written(
    extra: list[str], needles: tuple[str, ...], tl: Tl, finished_ft: Path, datasets: dict[str, Path]
) -> None:
    before = snapshot(finished_ft)
    extra = [str(datasets[e]) if e in datasets else e for e in extra]
    code, _, err = tl("train", "--resume", finished_ft, "--set", "epochs=2", *extra)
    assert code == 2, err
    one_error(err, "cannot resume", *needles)
    assert snapshot(finished_ft) == before
    if "--data" in extra:  # the run itself is intact: it evaluates, and continues with its own data
        assert tl("evaluate", finished_ft)[0] == 0
        code, _, err = tl("train", "--resume", finished_ft, "--set", "epochs=2")
        assert code == 0, err
        assert_one_finished_run(finished_ft)


def test_a_checkpoint_of_another_shape_is_refused_before_anything_is_written(
    tl: Tl, finished_ft: Path, datasets: dict[str, Path]
) -> None:
    # A run from before config.yaml recorded the classes: the checkpoint's shapes are the check.
    saved = yaml.safe_load((finished_ft / "config.yaml").read_text())
    del saved["classes"], saved["task"], saved["in_chans"]
    (finished_ft / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    (finished_ft / "model.json").unlink()
    before = snapshot(finished_ft)
    code, _, err = tl("train", "--resume", finished_ft, "--data", datasets["two"], "--set", "epochs=2")
    assert code == 2, err
    one_error(err, "cannot resume", "checkpoint's head.", "shape (3", "data (2")
    assert snapshot(finished_ft) == before


def test_a_finished_run_with_nothing_left_to_train_is_not_resumed(tl: Tl, finished_ft: Path) -> None:
    before = snapshot(finished_ft)
    code, _, err = tl("train", "--resume", finished_ft)
    assert code == 2
    one_error(err, "finished run: nothing to resume", "epochs=N above 1")
    assert snapshot(finished_ft) == before


# -- runs and data folders -------------------------------------------------------------------------------


def test_an_output_inside_the_data_folder_is_refused(tl: Tl, tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    flat = make_folder(tmp_path / "flat", {"": 4})
    code, _, err = train(tl, flat, flat / "run1")
    assert code == 2
    one_error(err, "inside the data folder")
    assert not (flat / "run1").exists()


def test_a_run_folder_inside_a_flat_data_folder_is_not_read_as_a_class(
    tl: Tl, tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    flat = make_folder(tmp_path / "flat", {"": 4})
    assert train(tl, flat, tmp_path / "run1")[0] == 0
    shutil.move(tmp_path / "run1", flat / "run1")  # moved there by hand (its PNGs would be a class)
    code, _, err = train(tl, flat, tmp_path / "run2")
    assert code == 0, err
    assert "run1" in err and "tlcore run" in err
    report = json.loads((tmp_path / "run2" / "report.json").read_text())
    assert report["data"]["classes"] == ["blue", "green", "red"]


# -- report and export into a folder that cannot be written ------------------------------------------------


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], Path]:
    """``read_only(folder)``: creating or writing a file in ``folder`` fails with EROFS from then on
    (simulated: the tests may run as root, whom file modes do not stop)."""
    folders: list[Path] = []
    real_open, real_os_open = builtins.open, os.open

    def blocked(path: Any) -> bool:
        if not isinstance(path, str | bytes | os.PathLike):
            return False
        resolved = Path(os.fsdecode(path)).resolve()
        return any(resolved.parent == f or f in resolved.parents for f in folders)

    def fail(path: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if set(mode) & set("wax+") and blocked(file):
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and blocked(path):
            fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)

    def add(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder.resolve())
        return folder

    return add


def test_report_and_export_into_a_read_only_folder_are_one_line_errors(
    tl: Tl, tmp_path: Path, finished: Callable[[str], Path], read_only: Callable[[Path], Path]
) -> None:
    run = finished("fe")
    shelf = read_only(tmp_path / "shelf")
    for argv in (
        ["report", run, "--output", shelf / "report.html"],
        ["export", run, "--format", "torchscript", "--output", shelf / "model.pt"],
    ):
        code, _, err = tl(*argv)
        assert code == 2, (argv, err)
        one_error(err, "shelf", "Read-only file system", "--output")
    read_only(run)  # the run directory itself, the default destination
    code, _, err = tl("report", run)
    assert code == 2, err
    one_error(err, "Read-only file system")
    assert not list(tmp_path.rglob("*.tmp"))


# -- random sequences: every run directory is one finished run, or refused ---------------------------------


def run_id_of_safetensors(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return (fh.metadata() or {}).get("run_id")


def assert_one_finished_run(run: Path) -> str:
    """Every file of ``run`` comes from one finished run; returns its id."""
    assert not (run / "incomplete.json").exists()
    config = yaml.safe_load((run / "config.yaml").read_text())
    report = json.loads((run / "report.json").read_text())
    meta = json.loads((run / "model.json").read_text())
    run_id = config["run_id"]
    assert run_id and report["run_id"] == meta["run_id"] == run_id_of_safetensors(run / "model.safetensors") == run_id
    assert config["classes"] == meta["classes"] == report["data"]["classes"]
    assert config["config"] == report["config"]
    fine_tuned = report["technique"] == "fine-tuning"
    for name in ("best.safetensors", "checkpoint.safetensors", "checkpoint_state.pt", "metrics.csv"):
        assert (run / name).exists() == fine_tuned, name
    if fine_tuned:
        with (run / "metrics.csv").open(newline="") as fh:
            epochs = [int(row["epoch"]) for row in csv.DictReader(fh)]
        assert epochs == list(range(1, report["timing"]["epochs_run"] + 1))
    with (run / "predictions.csv").open(newline="") as fh:
        header = next(csv.reader(fh))
    assert [h.removeprefix("proba_") for h in header if h.startswith("proba_")] == config["classes"]
    assert not list(run.glob(".*.tmp*"))
    return str(run_id)


class Interrupts:
    """Ctrl-C just before the n-th file written or removed (None: never)."""

    def __init__(self) -> None:
        self.left: int | None = None

    def tick(self) -> None:
        if self.left is not None:
            self.left -= 1
            if self.left < 0:
                self.left = None
                raise KeyboardInterrupt


@pytest.fixture
def interrupts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Interrupts]:
    from tlcore import io_atomic
    from tlcore.reports import plots

    stop = Interrupts()
    real_write, real_unlink = io_atomic.atomic_write, Path.unlink

    def atomic_write(path: Any, write: Any) -> None:
        stop.tick()
        real_write(path, write)

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if not self.name.startswith("."):  # temporary files are the writer's own business
            stop.tick()
        real_unlink(self, missing_ok=missing_ok)

    def quick_plots(run_dir: Path, report: Any, predictions: Any) -> tuple[list[Path], list[str]]:
        # matplotlib takes seconds; one stand-in file per run keeps the file-level behaviour
        io_atomic.write_bytes(run_dir / "learning_curves.png", b"\x89PNG stand-in")
        return [run_dir / "learning_curves.png"], []

    monkeypatch.setattr(io_atomic, "atomic_write", atomic_write)
    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(plots, "write_plots", quick_plots)
    yield stop


def marked_run_id(run: Path) -> str | None:
    return str(json.loads((run / "incomplete.json").read_text())["run_id"])


def configured_run_id(run: Path) -> str | None:
    path = run / "config.yaml"
    return str(yaml.safe_load(path.read_text())["run_id"]) if path.exists() else None


def test_random_sequences_never_lose_or_mix_a_run(
    tl: Tl, tmp_path: Path, datasets: dict[str, Path], interrupts: Interrupts
) -> None:
    rng = random.Random(7)
    seen: Counter[str] = Counter()  # what the sequences covered: each outcome must occur
    for sequence in range(20):
        run = tmp_path / f"run{sequence}"
        finished: str | None = None  # the id of the finished run in `run`, if any
        for _ in range(rng.randint(3, 5)):
            step = rng.choice(["train", "train", "overwrite", "resume", "evaluate"])
            data = datasets[rng.choice(["three", "two"])]
            recipe = rng.choice([FE, FT, [*FT, "--set", "epochs=2"]])
            interrupted = step != "evaluate" and rng.random() < 0.5
            more: list[str] = rng.choice([[], ["--set", "epochs=3"], ["--data", str(data)]])
            interrupts.left = rng.randint(0, 12) if interrupted else None
            before = snapshot(run) if run.exists() else {}
            unfinished_before = (run / "incomplete.json").exists()
            resumable = unfinished_before and marked_run_id(run) == configured_run_id(run)
            if step == "evaluate":
                code, _, err = tl("evaluate", run)
            elif step == "resume":
                code, _, err = tl("train", "--resume", run, *more)
            else:
                code, _, err = train(tl, data, run, *(["--overwrite"] if step == "overwrite" else []), recipe=recipe)
            where = f"sequence {sequence}, {step}: {err[-300:]}"
            seen[f"{step} {code}"] += 1
            assert code in (0, 2, 130), where  # never "unexpected"
            if code == 2:
                one_error(err)
                if step != "evaluate":
                    assert snapshot(run) == before if run.exists() else not before, where  # refused: untouched
            if code == 130:
                assert interrupted, where
            if step == "resume" and resumable and not interrupted and "--data" not in more:
                assert code == 0, where  # an interrupted run stays resumable
            if code == 0 and step != "evaluate":
                finished = assert_one_finished_run(run)
            elif run.exists() and (run / "incomplete.json").exists():
                if not unfinished_before:  # this step left it unfinished: only an interrupted one may
                    assert code == 130, where
                    if finished is not None:  # a finished run: only --overwrite or --resume touch it
                        assert step in ("overwrite", "resume"), where
                finished = None
                interrupts.left = None
                seen["unfinished"] += 1
                code, _, err = tl("evaluate", run)  # every reader refuses it
                assert code == 2 and "unfinished run" in one_error(err), where
            elif finished is not None:
                assert assert_one_finished_run(run) == finished, where  # still the same finished run
    for outcome in ("train 0", "train 2", "train 130", "overwrite 0", "overwrite 130", "resume 0", "resume 2",
                    "evaluate 0", "evaluate 2", "unfinished"):  # fmt: skip
        assert seen[outcome], (outcome, seen)
