"""Model assembly on timm: logits equal timm's, adapters start as identity, frozen is frozen."""

import numpy as np
import torch

from munet.model.ops import TorchOps
from munet.model.root import split_timm_state, timm_model
from munet.model.vit import build_model
from munet.system.arch import RootArch
from munet.system.assemble import assemble_child
from munet.system.hparams import BASE_DEFAULTS, search_space_for
from munet.system.state import Settings, make_root_state

ARCH = RootArch(embed_dim=32, depth=3, num_heads=2, mlp_hidden_dim=64, patch_size=8, image_size=32)


def make_state(seed=0):
    torch.manual_seed(seed)
    ref = timm_model(ARCH, 5).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    state = make_root_state(
        ARCH, split_timm_state(ref.state_dict(), ARCH), BASE_DEFAULTS, TorchOps()
    )
    return ref, state


def settings(prob=0.0):
    return Settings(space=search_space_for(3, 8), mutation_prob=prob, defaults=BASE_DEFAULTS)


def test_path_model_matches_timm_vit_logits():
    ref, state = make_state()
    child, _ = assemble_child(
        state, state.root, "t", 5, {}, False, np.random.default_rng(0), TorchOps(), settings()
    )
    child.component("head").params = {
        k[5:]: v.clone() for k, v in ref.state_dict().items() if k.startswith("head.")
    }
    model = build_model(ARCH, child.hparams, child.components, trainable=False)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    # the state dict is exactly timm's
    assert set(model.state_dict()) == set(ref.state_dict())


def test_new_adapter_is_identity_and_new_head_is_zero():
    _, state = make_state()
    s = settings()
    base, _ = assemble_child(
        state, state.root, "t", 5, {}, False, np.random.default_rng(0), TorchOps(), s
    )
    hp = dict(base.hparams)
    assert torch.count_nonzero(base.component("head").params["weight"]) == 0
    s.mutate_adapters = True
    s.mutation_prob = 1.0
    s.space = {}
    child, rec = assemble_child(
        state, state.root, "t", 5, {}, True, np.random.default_rng(0), TorchOps(), s
    )
    assert child.hparams["adapter_layers"] == [0, 1, 2]
    assert "adapter inserted before block 1" in rec
    x = torch.randn(2, 3, 32, 32)
    m0 = build_model(ARCH, hp, base.components, trainable=False)
    m1 = build_model(ARCH, child.hparams, child.components, trainable=False)
    h0 = m0._embed(x)
    for b in m0.blocks:
        h0 = b(h0)
    feats0 = m0.norm(h0)
    h = m1._embed(x)
    for i, b in enumerate(m1.blocks):
        h = b(m1.adapters[str(i)](h))
    assert torch.allclose(m1.norm(h), feats0, atol=1e-6)
    assert torch.count_nonzero(child.component("residual_adapter_0").params["fc1.weight"]) > 0


def test_frozen_components_get_no_gradient_and_prefix_runs_without_autograd():
    _, state = make_state()
    s = settings()
    child, _ = assemble_child(
        state, state.root, "t", 5, {}, True, np.random.default_rng(0), TorchOps(), s
    )
    model = build_model(ARCH, child.hparams, child.components)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    names = [n for n, _ in model.stages()]
    assert model.grad_from == names.index("encoder_norm")
    frozen_before = {k: v.clone() for k, v in state.root.component("encoderblock_2").params.items()}
    loss = model(torch.randn(3, 3, 32, 32)).logsumexp(-1).sum()
    loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (n in trainable)
    for k, v in state.root.component("encoderblock_2").params.items():
        assert torch.equal(v, frozen_before[k])


def test_posembed_resize_keeps_class_token_and_is_exact_at_same_size():
    _, state = make_state()
    pos = state.posembed_cache[32].params["pos_embed"]
    ops = TorchOps()
    big = ops.resize_posembed({"pos_embed": pos}, {"pos_embed": (1, 1 + 36, 32)})["pos_embed"]
    assert big.shape == (1, 37, 32)
    assert torch.equal(big[:, 0], pos[:, 0])
    same = ops.resize_posembed({"pos_embed": pos}, {"pos_embed": (1, 17, 32)})["pos_embed"]
    assert torch.allclose(same, pos)
