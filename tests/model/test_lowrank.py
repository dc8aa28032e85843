"""Low-rank components on timm's ViT: a new one changes nothing, training touches only its own
tensors, merged weights (W + B·A) load into a plain timm ViT with the same logits."""

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from munet.model.ops import TorchOps
from munet.model.root import split_timm_state, timm_model
from munet.model.vit import build_model, merged_state_dict, stage_keys
from munet.serve.export import timm_args
from munet.system.arch import RootArch
from munet.system.assemble import assemble_child
from munet.system.hparams import default_hparams, search_space_for
from munet.system.path import Path
from munet.system.state import Settings, make_root_state
from munet.train.trainer import make_optimizer

ARCH = RootArch(embed_dim=32, depth=3, num_heads=2, mlp_hidden_dim=64, patch_size=8, image_size=32)
DEFAULTS = default_hparams("spec", "extended")


def make_state():
    torch.manual_seed(0)
    ref = timm_model(ARCH, 5).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return make_root_state(ARCH, split_timm_state(ref.state_dict(), ARCH), DEFAULTS, TorchOps())


def child(state, parent, **hparams):
    s = Settings(space=search_space_for(3, 8, search="extended"), defaults=DEFAULTS)
    stand_in = Path(-1, parent.task, parent, {**parent.hparams, **hparams}, parent.components)
    rng = np.random.default_rng(0)
    path, _ = assemble_child(state, stand_in, "t", 5, {}, False, rng, TorchOps(), s)
    return path


def randomise_lowranks(path, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for c in path.components:
        if c.name.startswith("lowrank_"):
            c.params = {k: 0.1 * torch.randn(v.shape, generator=gen) for k, v in c.params.items()}


def test_new_lowrank_is_an_exact_no_op():
    state = make_state()
    base = child(state, state.root)
    lowrank = child(state, state.root, lowrank_layers=[0, 1, 2], lowrank_rank=4)
    comp = lowrank.component("lowrank_1")
    assert all(torch.count_nonzero(v) == 0 for k, v in comp.params.items() if "lora_B" in k)
    assert all(torch.count_nonzero(v) > 0 for k, v in comp.params.items() if "lora_A" in k)
    x = torch.randn(4, 3, 32, 32)
    m0 = build_model(ARCH, base.hparams, base.components, trainable=False, head=False)
    m1 = build_model(ARCH, lowrank.hparams, lowrank.components, trainable=False, head=False)
    with torch.no_grad():
        assert torch.equal(m0(x), m1(x))


def test_training_moves_only_the_lowrank_and_the_head():
    state = make_state()
    path = child(state, state.root, lowrank_layers=[1], opt_name="adamw", opt_adamw_lr=1e-2)
    model = build_model(ARCH, path.hparams, path.components)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        *(f"blocks.1.{t}.lora_{m}" for t in ARCH.linear_shapes() for m in "AB"),
        "head.weight",
        "head.bias",
    }
    # block 0 runs without autograd; block 1 (with its delta) is the first trainable stage
    assert [n for n, _ in model.stages()][model.grad_from] == "encoderblock_1"
    frozen = {k: v.clone() for k, v in state.root.component("encoderblock_1").params.items()}
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], path.hparams)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 1e-2
    assert opt.defaults["weight_decay"] == DEFAULTS["opt_weight_decay"]
    for _ in range(2):  # B moves on the first step; A only once B is non-zero
        loss = torch.nn.functional.cross_entropy(
            model(torch.randn(8, 3, 32, 32)), torch.arange(8) % 5
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in state.root.component("encoderblock_1").params.items():
        assert torch.equal(v, frozen[k])
    params = path.component("lowrank_1").params
    assert torch.count_nonzero(params["mlp.fc1.lora_B"]) > 0


def test_sgd_stays_the_papers_optimizer():
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], {**DEFAULTS, "opt_momentum": 0.9})
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["lr"] == DEFAULTS["opt_lr"]
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 0


def test_merged_weights_load_into_plain_timm_with_the_same_logits():
    state = make_state()
    path = child(state, state.root, lowrank_layers=[0, 2], lowrank_rank=2)
    randomise_lowranks(path)
    path.component("head").params = {"weight": torch.randn(5, 32), "bias": torch.randn(5)}
    model = build_model(ARCH, path.hparams, path.components, trainable=False)
    merged = merged_state_dict(model)
    assert not [k for k in merged if "lora" in k]
    plain = VisionTransformer(**timm_args(ARCH, path.hparams)).eval()
    plain.load_state_dict(merged, strict=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        got, want = plain(x), model(x)
    assert (got - want).abs().max() < 1e-5
    assert (
        want
        - build_model(
            ARCH,
            {**path.hparams, "lowrank_layers": []},
            [c for c in path.components if not c.name.startswith("lowrank_")],
            trainable=False,
        )(x)
    ).abs().max() > 1e-3  # the deltas do change the model


def test_a_lowrank_joins_its_blocks_stage_key():
    state = make_state()
    path = child(state, state.root, lowrank_layers=[1])
    model = build_model(ARCH, path.hparams, path.components, trainable=False)
    keys = dict((k[0], k[1]) for k in stage_keys(model, path.components, 32))
    block, delta = path.component("encoderblock_1"), path.component("lowrank_1")
    assert keys["encoderblock_1"] == (block.id, delta.id)
    assert keys["encoderblock_0"] == (path.component("encoderblock_0").id,)
