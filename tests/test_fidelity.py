"""Fidelity metrics: element-wise, order-blind (sorted), integer mismatches, structural mismatch."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sweep.fidelity import compare


def _save(path: Path, tensors: list[torch.Tensor]) -> Path:
    torch.save(tensors, path)
    return path


def test_identical_outputs_have_zero_error(tmp_path: Path) -> None:
    t = [torch.rand(100, 4), torch.rand(100), torch.arange(100)]
    e = compare(_save(tmp_path / "a.pt", t), _save(tmp_path / "b.pt", t))
    assert e == {"rel_err": 0.0, "rel_err_sorted": 0.0, "max_abs_err": 0.0, "int_mismatch": 0.0}


def test_reordered_near_ties_show_in_rel_err_but_not_sorted(tmp_path: Path) -> None:
    scores = torch.rand(100).sort(descending=True).values
    swapped = scores.clone()
    swapped[[10, 11]] = swapped[[11, 10]]  # two near-tied detections trade places
    noisy = scores * (1 + 1e-3 * torch.randn(100))
    ref = _save(tmp_path / "ref.pt", [scores])
    e_swap = compare(_save(tmp_path / "s.pt", [swapped]), ref)
    assert e_swap["rel_err"] > 0 and e_swap["rel_err_sorted"] == 0.0
    e_noise = compare(_save(tmp_path / "n.pt", [noisy]), ref)
    assert e_noise["rel_err_sorted"] == pytest.approx(e_noise["rel_err"], rel=0.5)
    assert 1e-4 < e_noise["rel_err"] < 1e-2


def test_integer_mismatch_and_structure(tmp_path: Path) -> None:
    ref = _save(tmp_path / "ref.pt", [torch.ones(4), torch.tensor([1, 2, 3, 4])])
    e = compare(_save(tmp_path / "o.pt", [torch.ones(4), torch.tensor([1, 2, 0, 0])]), ref)
    assert e["int_mismatch"] == 0.5 and e["rel_err"] == 0.0
    bad = compare(_save(tmp_path / "x.pt", [torch.ones(5)]), ref)
    assert math.isinf(bad["rel_err"]) and math.isinf(bad["rel_err_sorted"])
    nan = compare(_save(tmp_path / "y.pt", [torch.full((4,), float("nan")), torch.tensor([1, 2, 3, 4])]), ref)
    assert math.isinf(nan["rel_err"])
