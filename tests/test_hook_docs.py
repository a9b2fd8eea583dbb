"""docs/plugins/hooks.md matches tlcore.hookspecs, its examples work, and every hook has a test of its own.

The rule for "a test of its own": some test function under tests/ or plugins/*/tests whose name contains the
hook's name (``test_register_presets_...``).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tlcore import HOOKS_VERSION, hookspecs, specs
from tlcore.catalog import CatalogEntry
from tlcore.plugins import PluginHost
from tlcore.testing import check_plugin

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins" / "hooks.md"


def hook_specs() -> dict[str, Callable[..., Any]]:
    """Every hook spec in tlcore.hookspecs (pluggy marks them with a ``tlcore_spec`` attribute)."""
    return {name: fn for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "tlcore_spec")}


HOOKS = sorted(hook_specs())


def sections(text: str, level: str) -> dict[str, str]:
    """Markdown sections by heading text (backticks stripped) for headings of ``level`` ("##", "###")."""
    out: dict[str, str] = {}
    current: str | None = None
    in_fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and re.match(rf"{level} \S", line):
            current = line[len(level) + 1 :].strip().strip("`")
            out[current] = ""
            continue
        if not in_fence and current is not None and re.match(rf"#{{1,{len(level) - 1}}} \S", line):
            current = None  # a higher-level heading ends the section
        if current is not None:
            out[current] += line + "\n"
    return out


def code_blocks(section: str, language: str = "python") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section, flags=re.S | re.M)


def annotation_text(annotation: Any) -> str:
    # `from __future__ import annotations` keeps annotations as the source text.
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def spec_signature(fn: Callable[..., Any]) -> str:
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {annotation_text(p.annotation)}" for p in sig.parameters.values())
    return f"def {fn.__name__}({params}) -> {annotation_text(sig.return_annotation)}"


def normalised(signature: str) -> str:
    return re.sub(r"\s+", "", signature).removesuffix(":").removesuffix("...").removesuffix(":")


@pytest.fixture(scope="module")
def hook_sections() -> dict[str, str]:
    return sections(DOC.read_text(encoding="utf-8"), "##")


def test_there_are_hooks_to_document() -> None:
    assert len(HOOKS) >= 7
    assert "register_presets" in HOOKS and "resolve_backbone" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_exact_signature(hook: str, hook_sections: dict[str, str]) -> None:
    assert hook in hook_sections, f"docs/plugins/hooks.md has no '## {hook}' section"
    section = hook_sections[hook]
    blocks = code_blocks(section)
    assert blocks, f"'## {hook}' has no python code block with the signature"
    documented = next((line for line in blocks[0].splitlines() if line.startswith("def ")), None)
    assert documented is not None, f"the first python block of '## {hook}' does not start with 'def {hook}('"
    expected = spec_signature(hook_specs()[hook])
    assert normalised(documented) == normalised(expected), (
        f"docs/plugins/hooks.md documents\n  {documented}\nbut tlcore.hookspecs has\n  {expected}"
    )
    for topic in ("**Arguments.**", "**Returns.**", "**When it is called.**"):
        assert topic in section, f"'## {hook}' does not say {topic}"
    firstresult = bool(hook_specs()[hook].tlcore_spec["firstresult"])  # type: ignore[attr-defined]
    assert ("firstresult" in section) == firstresult, f"'## {hook}': firstresult={firstresult} is not documented"


def test_no_section_documents_a_hook_that_does_not_exist(hook_sections: dict[str, str]) -> None:
    hook_like = {title for title in hook_sections if re.fullmatch(r"[a-z_]+", title)}
    assert hook_like == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_example_is_a_working_plugin(hook: str, hook_sections: dict[str, str], tmp_path: Path) -> None:
    """Each section's example, loaded as a plugin module, implements that hook and passes check_plugin."""
    examples = [b for b in code_blocks(hook_sections.get(hook, "")) if "@tlcore.hookimpl" in b]
    assert len(examples) == 1, f"'## {hook}' needs exactly one example with @tlcore.hookimpl"
    module = ModuleType(f"hooks_md_{hook}")
    module.TLCORE_HOOKS = HOOKS_VERSION  # the module-level declaration, documented once under "Hook contract version"
    exec(compile(examples[0], f"hooks.md:{hook}", "exec"), module.__dict__)
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(module, name="acme")
    assert next(i for i in host.plugins() if i.name == "acme").hooks == [hook]
    check_plugin(module, name="acme", workdir=tmp_path)


SPEC_OBJECTS: list[tuple[str, list[str]]] = [
    *[
        (cls.__name__, [f.name for f in dataclasses.fields(cls)])
        for cls in (
            specs.DatasetAdapter,
            specs.LabeledDataset,
            specs.Record,
            specs.Augmentation,
            specs.AugmentationContext,
            specs.Backbone,
            specs.Head,
            specs.HeadContext,
            specs.Preset,
            specs.Perturbation,
            specs.Logger,
            specs.LoggerContext,
        )
    ],
    ("CatalogEntry", list(CatalogEntry.model_fields)),
]


@pytest.mark.parametrize(("cls", "fields"), SPEC_OBJECTS, ids=[name for name, _ in SPEC_OBJECTS])
def test_registered_object_fields_are_documented(cls: str, fields: list[str]) -> None:
    objects = sections(DOC.read_text(encoding="utf-8"), "###")
    section = next((text for title, text in objects.items() if cls in title.split()), None)
    assert section is not None, f"docs/plugins/hooks.md has no '### {cls}' section"
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    missing = [f for f in fields if f not in documented]
    assert not missing, f"'### {cls}' does not list the fields {missing}"


# -- every hook has a test of its own ----------------------------------------------------------------------


def collect_test_functions() -> dict[str, list[str]]:
    """Test function names per file, for tests/ and plugins/*/tests (this file excluded)."""
    files = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]
    names: dict[str, list[str]] = {}
    for path in files:
        if path.resolve() == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names[str(path.relative_to(ROOT))] = [
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        ]
    return names


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_named_after_it(hook: str) -> None:
    found = [f"{path}::{name}" for path, names in collect_test_functions().items() for name in names if hook in name]
    assert found, (
        f"no test function under tests/ or plugins/*/tests has {hook!r} in its name: "
        f"add e.g. test_{hook}_... to tests/test_hooks.py"
    )
