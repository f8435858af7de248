"""scripts/mutation_check.py stays in step with the sources: every planted bug applies to exactly
one place of today's files, and each one really changes the text (the check itself takes minutes
per mutant and is run by hand; its last result is in the README)."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("mutation_check", REPO / "scripts" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_mutant_applies_once():
    mc = _script()
    assert len(mc.MUTANTS) >= 15 and len({m.name for m in mc.MUTANTS}) == len(mc.MUTANTS)
    for m in mc.MUTANTS:
        text = (REPO / m.path).read_text()
        assert text.count(m.old) == 1, f"{m.name}: {text.count(m.old)} matches in {m.path}"
        assert m.old != m.new
