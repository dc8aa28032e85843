"""timm: and file: roots: weights in every format give the source model's logits; unsupported
architectures and unusable files are refused in one line; nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from munet.config import FROZEN_KEYS, build_config
from munet.errors import RootError
from munet.model.ops import TorchOps
from munet.model.root import load_root
from munet.model.vit import build_model
from munet.system.arch import HEAD
from munet.system.component import Component
from munet.system.hparams import BASE_DEFAULTS
from munet.system.state import make_root_state

SMALL = {"model": "vit_tiny_patch16_224", "args": {"depth": 2, "img_size": 32}}
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def small_vit(seed: int = 0, num_classes: int = 5, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    args = {**SMALL["args"], **kw}
    return timm.create_model(SMALL["model"], pretrained=False, num_classes=num_classes, **args)


def write_augreg_npz(model: torch.nn.Module, path: Path) -> None:
    """The inverse of timm's ``_load_weights``: an AugReg-layout .npz of a timm ViT."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    d = sd["cls_token"].shape[-1]
    w = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # OIHW -> HWIO
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
        "head/kernel": sd["head.weight"].T,
        "head/bias": sd["head.bias"],
    }
    for i, block in enumerate(model.blocks):
        p, h = f"blocks.{i}.", block.attn.num_heads
        b = f"Transformer/encoderblock_{i}/"
        mha = b + "MultiHeadDotProductAttention_1/"
        for n, ln in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[f"{b}{n}/scale"], w[f"{b}{n}/bias"] = sd[p + ln + ".weight"], sd[p + ln + ".bias"]
        qkv_w = np.split(sd[p + "attn.qkv.weight"], 3)
        qkv_b = np.split(sd[p + "attn.qkv.bias"], 3)
        for n, wt, bs in zip(("query", "key", "value"), qkv_w, qkv_b, strict=True):
            w[f"{mha}{n}/kernel"] = wt.T.reshape(d, h, d // h)
            w[f"{mha}{n}/bias"] = bs.reshape(h, d // h)
        w[f"{mha}out/kernel"] = sd[p + "attn.proj.weight"].reshape(d, h, d // h).transpose(1, 2, 0)
        w[f"{mha}out/bias"] = sd[p + "attn.proj.bias"]
        for r in range(2):
            w[f"{b}MlpBlock_3/Dense_{r}/kernel"] = sd[f"{p}mlp.fc{r + 1}.weight"].T
            w[f"{b}MlpBlock_3/Dense_{r}/bias"] = sd[f"{p}mlp.fc{r + 1}.bias"]
    np.savez(path, **w)


def root_logits(root, source: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of the root path (munet's model) with the source model's head."""
    hp = {**BASE_DEFAULTS, "ds_image_size": root.arch.image_size}
    state = make_root_state(root.arch, root.params, hp, TorchOps())
    hp = {**state.root.hparams, "num_classes": source.head.out_features}
    head = Component(
        10**6,
        HEAD,
        root.arch.shapes(HEAD, hp),
        params={k: v.detach().clone() for k, v in source.head.state_dict().items()},
    )
    model = build_model(root.arch, hp, [*state.root.components, head], trainable=False)
    with torch.no_grad():
        return model(x)


def with_sidecar(path: Path, sidecar: dict) -> Path:
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One CPU thread: on 2-core machines a second OpenMP thread makes ViT matmuls ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _empty_caches(tmp_path_factory, monkeypatch):
    """No real Hugging Face / torch hub cache is ever consulted."""
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf")))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch")))


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "npz"])
def test_file_root_reproduces_source_logits(tmp_path, fmt):
    src = small_vit().eval()
    path = tmp_path / f"root.{fmt}"
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in src.state_dict().items()}, path)
    elif fmt == "pth":  # wrapped the way training scripts save it
        torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    else:
        write_augreg_npz(src, path)
    root = load_root(f"file:{with_sidecar(path, SMALL)}", log=lambda m: None)
    assert root.arch.to_dict() == {
        "embed_dim": 192,
        "depth": 2,
        "num_heads": 3,
        "mlp_hidden_dim": 768,
        "patch_size": 16,
        "image_size": 32,
        "in_chans": 3,
        "qkv_bias": True,
    }
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = src(x)
    assert torch.allclose(root_logits(root, src, x), want, atol=1e-5)
    assert root.info["weights"] == str(path) and root.info["input_norm_folded"] is False


def test_reference_params_come_from_the_loaded_arch(tmp_path):
    src = small_vit(depth=3, embed_dim=64, num_heads=4)
    path = tmp_path / "r.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, path)
    sidecar = {
        "model": "vit_tiny_patch16_224",
        "args": {"depth": 3, "img_size": 32, "embed_dim": 64, "num_heads": 4},
    }
    root = load_root(f"file:{with_sidecar(path, sidecar)}", log=lambda m: None)
    assert (root.arch.depth, root.arch.embed_dim, root.arch.mlp_hidden_dim) == (3, 64, 256)
    two_class = small_vit(num_classes=2, depth=3, embed_dim=64, num_heads=4)
    assert root.arch.reference_params() == sum(p.numel() for p in two_class.parameters())


def test_sidecar_with_explicit_args_and_input_norm_folding(tmp_path):
    args = {
        "img_size": 32,
        "patch_size": 8,
        "embed_dim": 32,
        "depth": 1,
        "num_heads": 2,
        "mlp_ratio": 2.0,
    }
    torch.manual_seed(1)
    src = timm.models.vision_transformer.VisionTransformer(num_classes=4, **args).eval()
    path = tmp_path / "custom.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, path)
    path.with_suffix(".yaml").write_text(json.dumps({"args": args, **IMAGENET}))  # YAML ⊃ JSON
    root = load_root(f"file:{path}", log=lambda m: None)
    assert root.info["input_norm_folded"] is True
    x01 = torch.rand(2, 3, 32, 32)
    mean, std = (torch.tensor(IMAGENET[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        want = src((x01 - mean) / std)
    assert torch.allclose(root_logits(root, src, x01 * 2 - 1), want, atol=1e-4)


def test_munet_arch_sidecar_loads_a_builtin_style_cache(tmp_path):
    from munet.model.root import timm_model
    from munet.system.arch import RootArch

    arch = RootArch(
        embed_dim=48, depth=2, num_heads=3, mlp_hidden_dim=96, patch_size=8, image_size=32
    )
    src = timm_model(arch, 3).eval()
    path = tmp_path / "vit_micro.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items() if "head" not in k}, path)
    root = load_root(f"file:{with_sidecar(path, {'arch': arch.to_dict()})}", log=lambda m: None)
    assert root.arch == arch
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(root_logits(root, src, x), src(x), atol=1e-5)


@pytest.fixture(scope="module")
def tiny224(tmp_path_factory):
    """A randomly initialised full-size vit_tiny_patch16_224 saved as safetensors and .npz."""
    d = tmp_path_factory.mktemp("tiny224")
    torch.manual_seed(2)
    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7).eval()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, d / "model.safetensors")
    write_augreg_npz(src, d / "Ti_16.npz")
    return src, d


@pytest.mark.parametrize("name", ["model.safetensors", "Ti_16.npz"])
def test_timm_root_with_root_weights(tiny224, name):
    src, d = tiny224
    root = load_root("timm:vit_tiny_patch16_224.augreg_in21k", log=lambda m: None, weights=d / name)
    assert root.spec == "timm:vit_tiny_patch16_224.augreg_in21k"
    assert (root.arch.depth, root.arch.image_size, root.arch.embed_dim) == (12, 224, 192)
    assert root.info["tag"] == "augreg_in21k"
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = src(x)
    assert torch.allclose(root_logits(root, src, x), want, atol=1e-4)


def test_timm_root_from_local_hf_cache_and_offline_message(tiny224, monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    src, d = tiny224
    spec = "timm:vit_tiny_patch16_224.augreg_in21k"
    with pytest.raises(RootError) as err:
        load_root(spec, log=lambda m: None)
    msg = str(err.value)
    assert "\n" not in msg and "--root-weights FILE" in msg
    assert "huggingface.co/timm/vit_tiny_patch16_224.augreg_in21k" in msg
    assert "Ti_16-i21k-300ep" in msg  # the original AugReg .npz is named too
    # a Hugging Face cache laid out like hf_hub_download leaves it
    repo = tmp_path / "models--timm--vit_tiny_patch16_224.augreg_in21k"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (snap / "model.safetensors").symlink_to(d / "model.safetensors")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    root = load_root(spec, log=lambda m: None)
    assert root.info["weights"] == str(snap / "model.safetensors")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"global_pool": "avg", "class_token": False}, "class_token=False"),
        ({"global_pool": "avg"}, "global_pool='avg'"),
        ({"reg_tokens": 4}, "4 register tokens"),
        ({"init_values": 1e-5}, "layer scale"),
        ({"qk_norm": True}, "qk_norm"),
        ({"pre_norm": True}, "pre_norm"),
        ({"global_pool": "avg", "fc_norm": True}, "global_pool='avg'"),
        ({"no_embed_class": True}, "no_embed_class"),
        ({"in_chans": 1}, "in_chans=1"),
        ({"norm_layer": "rmsnorm"}, "non-standard norm RmsNorm"),
        ({"act_layer": "gelu_tanh"}, "activation GELUTanh"),
    ],
)
def test_unsupported_architectures_are_refused_in_one_line(tmp_path, args, named):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"never read: the architecture is refused first")
    with_sidecar(path, {"model": "vit_tiny_patch16_224", "args": {"depth": 1, **args}})
    with pytest.raises(RootError) as err:
        load_root(f"file:{path}")
    msg = str(err.value)
    assert named in msg and "unsupported" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("resnet18", "model class ResNet"),
        ("deit_tiny_distilled_patch16_224", "VisionTransformerDistilled"),
        ("vit_base_patch16_siglip_224", "class_token=False"),
        ("vit_small_patch14_reg4_dinov2", "register tokens"),
        ("vit_base_patch16_clip_224", "pre_norm"),
        ("no_such_vit", "Unknown model (no_such_vit)"),
        ("vit_tiny_patch16_224.no_such_tag", "Invalid pretrained tag (no_such_tag)"),
    ],
)
def test_unsupported_timm_models_are_refused_before_weights(name, named):
    with pytest.raises(RootError, match=None) as err:
        load_root(f"timm:{name}", weights="/nonexistent.safetensors")
    assert named in str(err.value)


def test_bad_weight_files(tmp_path, tiny224):
    spec = "timm:vit_tiny_patch16_224"
    pickled = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole module: needs unpickling objects
    with pytest.raises(RootError, match="pickled Python objects"):
        load_root(spec, weights=pickled)
    small = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in small_vit().state_dict().items()}, small)
    with pytest.raises(RootError, match="not a checkpoint of this architecture|shape"):
        load_root(spec, weights=small)
    with pytest.raises(RootError, match="does not exist"):
        load_root(spec, weights=tmp_path / "missing.safetensors")
    odd = tmp_path / "weights.ckpt"
    odd.write_bytes(b"x")
    with pytest.raises(RootError, match="unknown format"):
        load_root(spec, weights=odd)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors")
    with pytest.raises(RootError, match="cannot read weights"):
        load_root(spec, weights=garbage)
    # a pre-logits layer in an old-style checkpoint
    src, _ = tiny224
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    sd["pre_logits.fc.weight"] = torch.zeros(192, 192)
    save_file(sd, tmp_path / "pre.safetensors")
    with pytest.raises(RootError, match="pre_logits.*unsupported"):
        load_root(spec, weights=tmp_path / "pre.safetensors")


def test_spec_errors(tmp_path):
    with pytest.raises(RootError, match="only for timm: roots"):
        load_root("builtin:vit_micro", weights=tmp_path / "x.safetensors")
    with pytest.raises(RootError, match="unknown kind 'hf'.*timm:<model>"):
        load_root("hf:google/vit")
    path = tmp_path / "lonely.safetensors"
    save_file({"x": torch.zeros(1)}, path)
    with pytest.raises(RootError, match=r"no sidecar; write .*lonely\.json"):
        load_root(f"file:{path}")
    with pytest.raises(RootError, match="only for timm: roots"):
        load_root(f"file:{path}", weights=path)


def test_root_weights_is_config_but_not_frozen():
    assert "root" in FROZEN_KEYS and "root_weights" not in FROZEN_KEYS
    cfg = build_config(None, {"root": "timm:vit_tiny_patch16_224", "root_weights": "/w.npz"})
    assert cfg.root_weights == "/w.npz" and build_config().root_weights is None


def test_cli_root_weights_is_stored_absolute(tmp_path, monkeypatch, capsys):
    import yaml

    from munet.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["config", "--root", "timm:vit_tiny_patch16_224", "--root-weights", "w.npz"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["root_weights"] == str(tmp_path / "w.npz")
