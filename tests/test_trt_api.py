"""The torch-tensorrt precision mapping, per version, without TensorRT: a requested precision never becomes fp32."""

from __future__ import annotations

import pytest

from sweep.trt_api import (
    RELEASES,
    TrtUnsupported,
    api_generation,
    parse_version,
    release_for,
    release_for_torch,
    trt_compile_kwargs,
)

SEED = [  # the seed's python-trt / cpp-trt rows: (model_precision, enabled_precisions)
    ("fp32+fp16", ("fp32", "bf16", "fp16")),
    ("fp32", ("fp32", "bf16", "fp16")),
    ("fp32", ("fp32", "bf16")),
    ("fp32", ("fp32",)),
]


@pytest.mark.parametrize(("version", "want"), [
    ("2.4.0", (2, 4)), ("2.9.0+cu128", (2, 9)), ("2.10.0", (2, 10)), ("2.13.0.dev20260801+cu130", (2, 13)),
    ("v3.0", (3, 0)),
])
def test_parse_version(version: str, want: tuple[int, int]) -> None:
    assert parse_version(version) == want


def test_unreadable_version_is_unsupported() -> None:
    with pytest.raises(TrtUnsupported, match="cannot read the torch-tensorrt version"):
        trt_compile_kwargs("", "fp32", ("fp32",))


@pytest.mark.parametrize(("version", "generation"), [
    ("2.9.0", "weak"), ("2.10.0", "explicit-default"), ("2.11.0+cu130", "explicit-default"),
    ("2.12.0", "explicit-default"), ("2.13.0", "strong"), ("2.14.0", "strong"),
])
def test_generations(version: str, generation: str) -> None:
    assert api_generation(version) == generation


@pytest.mark.parametrize(("version", "side"), [("2.5.1", "older"), ("2.8.0", "older"), ("2.15.0", "newer"),
                                               ("3.0.0", "newer")])
def test_a_release_outside_the_checked_table_is_unsupported(version: str, side: str) -> None:
    """Its precision API was never read: refusing beats a silent fp32 engine."""
    with pytest.raises(TrtUnsupported, match=f"{side} than the releases whose API sweep checks"):
        trt_compile_kwargs(version, "fp32", ("fp32",))


def test_patch_and_local_versions_use_their_minor_release() -> None:
    assert release_for("2.12.0").version == "2.12.1"
    assert release_for("2.13.0.dev20260801+cu130").version == "2.13.0"


@pytest.mark.parametrize(("torch_version", "trt"), [
    ("2.9.1", "2.9.0"), ("2.11.0+cu130", "2.11.0"), ("2.12.0", "2.12.1"), ("2.13.0+cpu", "2.13.0"),
    ("2.14.0", "2.14.0"),
])
def test_the_torch_tensorrt_that_installs_with_a_torch(torch_version: str, trt: str) -> None:
    release = release_for_torch(torch_version)
    assert release is not None and release.version == trt


def test_no_checked_release_for_other_torches() -> None:
    assert release_for_torch("2.8.0") is None and release_for_torch("2.15.0") is None


def test_table_derived_facts() -> None:
    majors = {r.version: (r.tensorrt_major, r.cuda_major, r.tensorrt_package()) for r in RELEASES}
    assert majors["2.12.1"] == (10, 13, "tensorrt-cu13<10.17.0,>=10.16.1")
    assert majors["2.13.0"] == (11, 13, "tensorrt-cu13<11.1.0,>=11.0.0")


def test_2_9_weak_typing_passes_enabled_precisions_through() -> None:
    for model_precision, enabled in SEED:
        assert trt_compile_kwargs("2.9.0", model_precision, enabled) == {"enabled_precisions": list(enabled)}
    # use_explicit_typing is left to its default (False up to 2.9): never the invalid True + {fp32, fp16}.
    assert "use_explicit_typing" not in trt_compile_kwargs("2.9.0", "fp32", ("fp32", "fp16"))
    assert trt_compile_kwargs("2.9.0", "bf16", ("bf16",)) == {"enabled_precisions": ["bf16"]}


def test_2_11_turns_weak_typing_back_on_for_lower_precisions() -> None:
    assert trt_compile_kwargs("2.11.0", "fp32", ("fp32",)) == {"use_explicit_typing": True}
    for model_precision, enabled in SEED[:3]:
        kwargs = trt_compile_kwargs("2.11.0", model_precision, enabled)
        # Without use_explicit_typing=False, 2.10+ asserts (or, by default, builds strongly typed fp32).
        assert kwargs == {"enabled_precisions": list(enabled), "use_explicit_typing": False}
    assert trt_compile_kwargs("2.10.0", "fp16", ("fp16",)) == {"enabled_precisions": ["fp16"],
                                                              "use_explicit_typing": False}


def test_2_13_maps_lower_precisions_to_autocast() -> None:
    # The brief's case: an fp32 model with fp16 allowed must become TensorRT autocast, not fp32.
    assert trt_compile_kwargs("2.13.0", "fp32", ("fp32", "fp16")) == {
        "enable_autocast": True, "autocast_low_precision_type": "fp16"}
    assert trt_compile_kwargs("2.13.0", "fp32", ("fp32", "bf16")) == {
        "enable_autocast": True, "autocast_low_precision_type": "bf16"}
    assert trt_compile_kwargs("2.13.0", "fp32+fp16", ("fp32", "fp16")) == {
        "enable_autocast": True, "autocast_low_precision_type": "fp16"}
    assert trt_compile_kwargs("2.14.2", "fp32", ("fp32",)) == {}
    # Weights already cast: strong typing keeps the model's dtype; nothing to pass.
    assert trt_compile_kwargs("2.13.0", "fp16", ("fp16",)) == {}
    assert trt_compile_kwargs("2.13.0", "bf16", ("fp32", "bf16")) == {}


@pytest.mark.parametrize(("model_precision", "enabled"), [
    ("fp32", ("fp32", "bf16", "fp16")), ("fp32+fp16", ("fp32", "bf16", "fp16")), ("bf16", ("bf16", "fp16")),
])
def test_2_13_cannot_mix_bf16_and_fp16(model_precision: str, enabled: tuple[str, ...]) -> None:
    with pytest.raises(TrtUnsupported, match="mixes bf16 and fp16"):
        trt_compile_kwargs("2.13.0", model_precision, enabled)


@pytest.mark.parametrize("version", [r.version for r in RELEASES])
def test_no_version_ever_drops_a_requested_precision(version: str) -> None:
    """Every answer either names the low precision (enabled set, autocast type, cast weights) or refuses."""
    for model_precision in ("fp32", "fp16", "bf16", "fp32+fp16", "fp32+bf16"):
        for enabled in (("fp32",), ("fp16",), ("bf16",), ("fp32", "fp16"), ("fp32", "bf16"), ("fp32", "bf16", "fp16")):
            try:
                kwargs = trt_compile_kwargs(version, model_precision, enabled)
            except TrtUnsupported:
                continue
            lows = {p for p in enabled if p != "fp32"}
            honoured = set(kwargs.get("enabled_precisions", [])) | {kwargs.get("autocast_low_precision_type")}
            if model_precision in ("fp16", "bf16"):
                honoured.add(model_precision)  # weights cast: the graph itself is low precision
            assert lows <= honoured, (version, model_precision, enabled, kwargs)
            assert not (kwargs.get("use_explicit_typing") is True and lows), (version, model_precision, enabled)


def test_request_checks() -> None:
    with pytest.raises(TrtUnsupported, match="needs fp16 among the enabled"):
        trt_compile_kwargs("2.9.0", "fp32+fp16", ("fp32", "bf16"))
    with pytest.raises(TrtUnsupported, match="unknown enabled precision"):
        trt_compile_kwargs("2.9.0", "fp32", ("fp32", "int8"))
    with pytest.raises(TrtUnsupported, match="empty"):
        trt_compile_kwargs("2.9.0", "fp32", ())
