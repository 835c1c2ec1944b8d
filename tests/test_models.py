"""Built-in models: the DINO-ViTDet stand-in on every path a runner takes (casts, autocast, trace, export,
compile, AOTInductor), seeded weights, `load_model` and `describe`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sweep.models import BUILTINS
from sweep.models.build import build_builtin, describe, draw_inputs, load_model
from sweep.models.deformable import multi_scale_deformable_attn
from sweep.models.dino import DinoDetector
from tests.compiled import package

NAME = "dino-vitdet-tiny"
Outputs = tuple[torch.Tensor, ...]  # boxes, scores, labels (, encoder logits, encoder box deltas)

# Exact paths (trace, export) replay the same ATen kernels as eager: outputs match to float rounding.
EXACT = (1e-5, 1e-5)  # (rtol, atol)
# Inductor reorders and fuses float arithmetic: scores to 1e-5, boxes (pixels of a 128 px image) to 1e-3.
# Two detections whose scores tie to ~1e-7 may then swap places (seen once in dino-vitdet-b's AOTI
# build), so compiled outputs are compared as sets: sorted scores, and boxes/labels in a canonical order.
COMPILED_SCORES = (1e-4, 1e-5)
COMPILED_BOXES = (1e-4, 1e-3)
# Low precision. DINO's two top-k selections (encoder proposals -> queries, queries x classes ->
# detections) reorder near-ties under fp16/bf16 rounding, and the content query paired with each
# proposal depends on its rank, so low-precision detections are not comparable box by box or label by
# label with fp32 ones (in this random model 65-93 % of the top-100 labels change). What is continuous is
# compared by relative L2 error: the p3-p6 pyramid and the encoder memory after deformable attention
# (measured on seeds 0-3: fp16 <= 1.4e-3, bf16 <= 1.1e-2, autocast bf16 <= 8.5e-3). The detections get
# only a sanity bound on the sorted scores (measured differences up to 2.2e-2 in bf16; scores ~0.03-0.09).
CONTINUOUS_REL_L2 = {torch.float16: 5e-3, torch.bfloat16: 3e-2}
SORTED_SCORES_ATOL = 5e-2


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """A model this small runs fastest on one thread, and OpenMP's spinning barriers make two threads
    on a shared two-core machine ~40x slower; restored afterwards for the other test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> DinoDetector:
    module = load_model({"kind": "builtin", "name": NAME}, seed=0)
    assert isinstance(module, DinoDetector)
    return module


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    spec = BUILTINS[NAME]
    (x,) = draw_inputs(spec.input_shapes(), *spec.input_range, seed=0)
    return x


@pytest.fixture(scope="module")
def reference(model: DinoDetector, image: torch.Tensor) -> Outputs:
    with torch.no_grad():
        return model(image)  # type: ignore[no-any-return]


def assert_same(out: Outputs, ref: Outputs, scores: tuple[float, float], boxes: tuple[float, float]) -> None:
    torch.testing.assert_close(out[1], ref[1], rtol=scores[0], atol=scores[1])
    torch.testing.assert_close(out[0], ref[0], rtol=boxes[0], atol=boxes[1])
    assert torch.equal(out[2], ref[2])


def canonical(out: Outputs) -> Outputs:
    """Detections ordered by (label, x1, y1) instead of score, so near-tie swaps do not matter."""
    boxes, scores, labels = out[:3]
    order = sorted(range(len(labels)), key=lambda i: (int(labels[i]), float(boxes[i, 0]), float(boxes[i, 1])))
    index = torch.tensor(order)
    return boxes[index], scores.sort(descending=True).values, labels[index]


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def continuous_parts(model: DinoDetector, image: torch.Tensor) -> list[torch.Tensor]:
    """The pyramid and the encoder memory (the two-stage selection's input), before any top-k."""
    captured: list[torch.Tensor] = []
    hook = model.head.enc_output_norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        features = model.features(image)
        model(image)
    finally:
        hook.remove()
    return [*features, *captured]


def assert_low_precision_close(
    out: Outputs, parts: list[torch.Tensor], ref: Outputs, ref_parts: list[torch.Tensor], dtype: torch.dtype
) -> None:
    boxes, scores, labels = out[:3]
    assert labels.dtype == torch.int64 and 0 <= int(labels.min()) and int(labels.max()) < 80
    assert bool(torch.isfinite(boxes).all()) and bool(torch.isfinite(scores).all())
    for low, high in zip(parts, ref_parts, strict=True):
        assert rel_l2(low, high) < CONTINUOUS_REL_L2[dtype]
    torch.testing.assert_close(scores.float(), ref[1], rtol=0, atol=SORTED_SCORES_ATOL)


def test_eager_fp32_shapes_and_dtypes(model: DinoDetector, image: torch.Tensor, reference: Outputs) -> None:
    assert list(image.shape) == [3, 128, 128] and 0.0 <= image.min() and image.max() < 255.0
    boxes, scores, labels, enc_logits, enc_deltas = reference
    tokens = sum(h * w for h, w in model.config.level_shapes)
    assert enc_logits.shape == (tokens, 80) and enc_deltas.shape == (tokens, 4)
    assert bool(torch.isfinite(enc_logits).all()) and bool(torch.isfinite(enc_deltas).all())
    assert boxes.shape == (100, 4) and boxes.dtype == torch.float32
    assert scores.shape == (100,) and scores.dtype == torch.float32
    assert labels.shape == (100,) and labels.dtype == torch.int64
    assert bool(torch.isfinite(boxes).all()) and bool(((scores > 0) & (scores < 1)).all())
    assert bool((scores[:-1] >= scores[1:]).all())  # top-k order
    assert 0 <= int(labels.min()) and int(labels.max()) < 80
    assert bool((boxes[:, 2:] >= boxes[:, :2]).all())  # x1 <= x2, y1 <= y2
    assert len(set(labels.tolist())) > 1 and float(scores[0] - scores[-1]) > 1e-3  # not a constant model


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_low_precision_cast(
    model: DinoDetector, image: torch.Tensor, reference: Outputs, dtype: torch.dtype
) -> None:
    cast = copy.deepcopy(model).to(dtype)
    with torch.no_grad():
        out = cast(image.to(dtype))
        parts = continuous_parts(cast, image.to(dtype))
        ref_parts = continuous_parts(model, image)
    assert out[0].dtype == dtype and out[1].dtype == dtype
    assert all(part.dtype == dtype for part in parts)
    assert_low_precision_close(out, parts, reference, ref_parts, dtype)


def test_autocast_bf16(model: DinoDetector, image: torch.Tensor, reference: Outputs) -> None:
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(image)
            parts = continuous_parts(model, image)
        ref_parts = continuous_parts(model, image)
    assert any(part.dtype == torch.bfloat16 for part in parts)  # autocast did act
    assert_low_precision_close(out, parts, reference, ref_parts, torch.bfloat16)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 3e-2), (torch.bfloat16, 0.15)], ids=["fp16", "bf16"])
def test_deformable_attention_low_precision_at_full_size(dtype: torch.dtype, tolerance: float) -> None:
    """The 512-px presets' level shapes (64x64 ... 8x8, 8 heads x 32): big enough to reach the strided
    fp16/bf16 grid_sample bug of torch's CPU kernel that the tiny preset's levels stay below.
    Rel. L2 vs fp32 on random values (rougher than real features, so the worst case): sampling
    positions rounded to fp16/bf16 cost ~1e-2 / ~8e-2."""
    gen = torch.Generator().manual_seed(0)
    shapes = ((64, 64), (32, 32), (16, 16), (8, 8))
    value = torch.randn(1, sum(h * w for h, w in shapes), 8, 32, generator=gen)
    locations = torch.rand(1, 500, 8, 4, 4, 2, generator=gen)
    weights = torch.rand(1, 500, 8, 4, 4, generator=gen).softmax(-1)
    ref = multi_scale_deformable_attn(value, shapes, locations, weights)
    out = multi_scale_deformable_attn(value.to(dtype), shapes, locations.to(dtype), weights.to(dtype))
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    assert rel_l2(out, ref) < tolerance


def test_jit_trace(model: DinoDetector, image: torch.Tensor, reference: Outputs) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(model, (image,))
        assert_same(traced(image), reference, EXACT, EXACT)
        # Nothing input-dependent was baked in: a second image agrees with eager too.
        other = 255.0 * torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(7))
        assert_same(traced(other), model(other), EXACT, EXACT)


def shape_arithmetic(graph: torch._C.Graph) -> list[str]:
    """Ops in a traced graph that compute on traced sizes (prim::NumToTensor values) other than reading
    them back with aten::Int, with the model source line each comes from."""
    derived: set[int] = set()
    found = []
    for node in graph.nodes():
        if node.kind() == "prim::NumToTensor":
            derived.add(node.output().unique())
        elif node.kind() != "aten::Int" and any(i.unique() in derived for i in node.inputs()):
            derived.update(o.unique() for o in node.outputs())
            lines = [ln.strip() for ln in node.sourceRange().splitlines() if "sweep/models" in ln]
            found.append(f"{node.kind()} at {lines[0] if lines else '?'}")
    return found


def test_trace_holds_no_arithmetic_on_sizes(model: DinoDetector, image: torch.Tensor) -> None:
    """A traced `dim // num_heads` or `batch * heads` becomes a tensor op whose constant sits on the GPU
    once the TorchScript is loaded there (torch::jit::load(file, device)), and reading the result back with
    int() synchronizes: CUDA-graph capture of cpp-torchscript failed on exactly that (visit F, 2026-11-30).
    The builtin models keep such sizes as Python ints fixed at build time, or -1 in reshapes."""
    with torch.no_grad():
        traced = torch.jit.trace(model, (image,), check_trace=False)
    assert shape_arithmetic(traced.inlined_graph) == []


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
def test_torch_export(model: DinoDetector, image: torch.Tensor, reference: Outputs, strict: bool) -> None:
    program = torch.export.export(model, (image,), strict=strict)
    with torch.no_grad():
        assert_same(program.module()(image), reference, EXACT, EXACT)


def test_exported_file_loads_through_load_model(
    model: DinoDetector, image: torch.Tensor, reference: Outputs, tmp_path: Path
) -> None:
    path = tmp_path / "dino.pt2"
    torch.export.save(torch.export.export(model, (image,)), path)
    loaded = load_model({"kind": "exported", "path": str(path)}, seed=0)  # eval() would raise here
    with torch.no_grad():
        assert_same(loaded(image), reference, EXACT, EXACT)


def test_dynamo_sees_one_graph(model: DinoDetector, image: torch.Tensor) -> None:
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(image)
    torch._dynamo.reset()
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.slow  # inductor builds ~40 C++ kernels: ~20 s with a warm cache, ~3 min cold on 2 cores
def test_torch_compile_fullgraph(model: DinoDetector, image: torch.Tensor, reference: Outputs) -> None:
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert_same(canonical(compiled(image)), canonical(reference), COMPILED_SCORES, COMPILED_BOXES)
    torch._dynamo.reset()


@pytest.mark.slow  # uses the session's AOTInductor build of the detector (conftest `compiled`): minutes on 2 cores
def test_aot_inductor(compiled: dict[str, Any], image: torch.Tensor, reference: Outputs) -> None:
    """The package the compile step built (torch.export + aoti_compile_and_package of this model, seed 0) runs
    from Python and matches eager. The same build serves test_compile.py and test_detector_e2e.py."""
    runner = torch._inductor.aoti_load_package(str(package(compiled, NAME)))
    with torch.no_grad():
        boxes, scores, labels, *_ = runner(image)
        assert_same(canonical((boxes, scores, labels)), canonical(reference), COMPILED_SCORES, COMPILED_BOXES)


def test_seeded_weights_are_deterministic() -> None:
    first = load_model({"kind": "builtin", "name": NAME}, seed=3).state_dict()
    again = load_model({"kind": "builtin", "name": NAME}, seed=3).state_dict()
    other = load_model({"kind": "builtin", "name": NAME}, seed=4).state_dict()
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["backbone.pos_embed"], other["backbone.pos_embed"])
    assert not torch.equal(first["head.decoder.0.cross_attn.value_proj.weight"],
                           other["head.decoder.0.cross_attn.value_proj.weight"])
    for key, value in first.items():  # no part of the model is left all zeros
        if key.endswith("weight") and value.dim() > 1:
            assert bool(value.ne(0).any()), key


def test_options_change_sizes() -> None:
    spec = BUILTINS[NAME]
    assert spec.input_shapes() == [[3, 128, 128]]
    assert spec.input_shapes(image_size=[64, 96]) == [[3, 64, 96]]
    module = load_model(
        {"kind": "builtin", "name": NAME, "options": {"image_size": [64, 96], "num_queries": 20, "dec_layers": 1}},
        seed=0,
    )
    (x,) = draw_inputs(spec.input_shapes(image_size=[64, 96]), *spec.input_range)
    with torch.no_grad():
        boxes, scores, labels, *_ = module(x)
    assert boxes.shape == (100, 4) and scores.shape == (100,) and labels.shape == (100,)
    with pytest.raises(TypeError, match="unknown option"):
        build_builtin(NAME, imagesize=64)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        build_builtin(NAME, image_size=100)


def test_tiny_builtin_still_works() -> None:
    module = load_model({"kind": "builtin", "name": "tiny"}, seed=0)
    spec = BUILTINS["tiny"]
    with torch.no_grad():
        out = module(*draw_inputs(spec.input_shapes(), *spec.input_range))
    assert out.shape == (1, 10) and bool(torch.isfinite(out).all())


def test_catalog_and_builders_agree_and_validate_options_without_torch() -> None:
    from sweep.models.build import BUILDERS

    assert set(BUILTINS) == set(BUILDERS)
    with pytest.raises(TypeError, match="unknown option"):
        BUILTINS[NAME].input_shapes(imagesize=64)
    with pytest.raises(ValueError, match="embed_dim must be a positive integer"):
        BUILTINS[NAME].input_shapes(embed_dim="wide")
    with pytest.raises(ValueError, match=r"image_size must be a positive int or \[height, width\]"):
        BUILTINS[NAME].input_shapes(image_size=[64, 64, 3])
    with pytest.raises(TypeError):
        BUILTINS["tiny"].input_shapes(depth=3)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        BUILTINS["tiny"].input_shapes(width=0)
    assert BUILTINS["tiny"].input_shapes(width=8) == [[1, 3, 64, 64]]
    assert BUILTINS[NAME].judged_outputs == (3, 4) and BUILTINS["tiny"].judged_outputs is None


@pytest.mark.parametrize("name", ["tiny", NAME])
def test_describe(name: str) -> None:
    info = describe(name)
    assert info["name"] == name and info["params"] > 0 and info["gflops"] > 0
    assert set(info["params_by_part"]) == set(BUILTINS[name].parts)
    assert sum(info["params_by_part"].values()) <= info["params"]
    assert info["input_shapes"] == BUILTINS[name].input_shapes()
