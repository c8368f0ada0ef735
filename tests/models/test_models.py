"""Model zoo: torchvision equivalence at full size, shapes and sizes of the tiny variants,
text masking, heads, registry errors and the multimodal container."""
import pytest
import torch
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.models.av_model import AVModel, ModelConfig
from pipeline.models.heads import ProjectionHead
from pipeline.models.registry import available, build_audio, build_text, build_video


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def shapes(m, drop_fc=True):
    return {k: tuple(v.shape) for k, v in m.state_dict().items() if not (drop_fc and k.startswith("fc."))}


@pytest.mark.parametrize("name", ["r2plus1d_18", "r3d_18", "mc3_18"])
def test_full_video_backbones_are_torchvision_architectures(name):
    ours, theirs = build_video(name), getattr(torchvision.models.video, name)(weights=None)
    assert shapes(ours) == shapes(theirs)  # same keys and shapes: torchvision checkpoints load
    assert n_params(ours) == n_params(theirs) - n_params(theirs.fc) and ours.out_dim == 512


def test_r2plus1d_features_equal_torchvision_with_same_weights():
    ours, theirs = build_video("r2plus1d_18").eval(), torchvision.models.video.r2plus1d_18(weights=None).eval()
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if not k.startswith("fc.")})
    theirs.fc = torch.nn.Identity()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


@pytest.mark.parametrize("name,t_out", [("r2plus1d_tiny", 1), ("r3d_tiny", 1), ("mc3_tiny", 8)])
def test_tiny_video_backbones(name, t_out):
    m = build_video(name).eval()
    assert n_params(m) < 1_000_000
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        fmap, pooled = m.forward_features(x), m(x)
    assert fmap.shape == (2, m.out_dim, t_out, 4, 4)  # per-location features for detection
    assert pooled.shape == (2, m.out_dim) and torch.allclose(pooled, fmap.mean(dim=(2, 3, 4)), atol=1e-6)


def test_video_width_and_depth_overrides():
    m = build_video("r2plus1d_tiny", widths=[8, 16, 32, 48], blocks=[1, 2, 1, 1])
    assert m.out_dim == 48 and len(m.layer2) == 2
    assert m(torch.randn(1, 3, 4, 32, 32)).shape == (1, 48)
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        m(torch.randn(3, 4, 32, 32))


def test_audio_backbones_match_torchvision_resnets():
    r18, tv18 = build_audio("resnet18"), torchvision.models.resnet18(weights=None)
    ours, theirs = shapes(r18), shapes(tv18)
    assert ours.pop("conv1.weight") == (64, 1, 7, 7) and theirs.pop("conv1.weight") == (64, 3, 7, 7)
    assert ours == theirs
    r9, tv9 = build_audio("resnet9"), ResNet(BasicBlock, [1, 1, 1, 1])  # GDT: one block per stage
    assert set(shapes(r9)) == set(shapes(tv9))
    assert n_params(r9) == n_params(tv9) - n_params(tv9.fc) - 64 * 2 * 49  # 1 instead of 3 input channels
    spec = torch.randn(2, 1, 40, 99)  # GDT's log filterbank: 40 bins x 99 frames
    for name, dim in (("resnet9", 512), ("resnet18", 512), ("resnet_tiny", 128)):
        m = build_audio(name).eval()
        with torch.no_grad():
            assert m(spec).shape == (2, dim) and m.out_dim == dim
    assert n_params(build_audio("resnet_tiny")) < 500_000


def test_audio_and_mc3_features_equal_torchvision_with_same_weights():
    """Built from torchvision's public blocks, the backbones compute what torchvision's own
    constructors build (ResNet-18 with a 1-channel stem, MC3-18) given the same weights."""
    ours, theirs = build_audio("resnet18").eval(), torchvision.models.resnet18(weights=None).eval()
    theirs.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    theirs.fc = torch.nn.Identity()
    ours.load_state_dict(theirs.state_dict())
    spec = torch.randn(2, 1, 40, 99)
    with torch.no_grad():
        assert torch.allclose(ours(spec), theirs(spec), atol=1e-5)
    ours, theirs = build_video("mc3_18").eval(), torchvision.models.video.mc3_18(weights=None).eval()
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if not k.startswith("fc.")})
    theirs.fc = torch.nn.Identity()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_text_encoder_ignores_padding():
    m = build_text("text_tiny").eval()
    ids = torch.tensor([[257, 105, 106, 258, 0, 0, 0, 0], [257, 50, 51, 52, 53, 54, 258, 0]])
    lengths = torch.tensor([4, 7])
    out = m(ids, lengths)
    assert out.shape == (2, m.out_dim) and m.out_dim == 64
    assert torch.allclose(out, m(ids))  # lengths or id != 0 give the same mask
    garbage = ids.clone()
    garbage[0, 4:] = 77  # content past the length never reaches the pool
    assert torch.allclose(m(garbage, lengths), out)
    longer = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], 1)
    assert torch.allclose(m(longer), out)
    assert torch.equal(m(torch.zeros(1, 8, dtype=torch.long)), torch.zeros(1, 64))  # empty text
    mean = build_text("text_tiny", pool="mean")
    assert mean(ids, lengths).shape == (2, 64)
    assert build_text("mmv").out_dim == 2048


def test_projection_head():
    head = ProjectionHead(512)
    z = head(torch.randn(6, 512))
    assert z.shape == (6, 256) and torch.allclose(z.norm(dim=1), torch.ones(6))
    assert [type(layer).__name__ for layer in head.net] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.net[0].out_features == 512  # GDT: 512 -> 512 -> 256
    assert head(torch.randn(3, 2, 512)).shape == (3, 2, 256)  # view axes pass through
    assert not torch.allclose(ProjectionHead(8, 4, normalize=False)(torch.randn(5, 8)).norm(dim=1), torch.ones(5))


def test_registry_errors_name_the_choices():
    with pytest.raises(ConfigError, match="unknown video backbone 'r4d'; choose from .*r2plus1d_18.*r3d_tiny"):
        build_video("r4d")
    with pytest.raises(ConfigError, match="unknown audio backbone .*resnet9"):
        build_audio("vggish")
    with pytest.raises(ConfigError, match="unknown text backbone .*byte_cnn"):
        build_text("bert")
    with pytest.raises(ConfigError, match="'r3d_tiny': unknown option 'widht'; options: conv, widths"):
        build_video("r3d_tiny", widht=[1, 2, 3, 4])
    with pytest.raises(ConfigError, match="bad value for option 'in_channels'"):
        build_audio("resnet9", in_channels="mono")
    with pytest.raises(ConfigError, match="blocks needs 4 positive integers"):
        build_video("r3d_tiny", blocks=[1, 1])
    with pytest.raises(ConfigError, match="unknown conv 'x'"):
        build_video("r3d_tiny", conv="x")
    with pytest.raises(ConfigError, match="ngram must be odd"):
        build_text("text_tiny", ngram=2)
    assert "r2plus1d_tiny" in available("video") and "resnet9" in available("audio")


def tiny_model(**extra) -> AVModel:
    cfg = load_config(ModelConfig, [], ["video.name=r2plus1d_tiny", "video.args.widths=[8,16,32,64]",
                                        "audio.name=resnet_tiny", "text.name=text_tiny", "embed_dim=32",
                                        *[f"{k}={v}" for k, v in extra.items()]])
    return AVModel(cfg)


def test_av_model_embeds_every_modality_with_views():
    torch.manual_seed(0)
    model = tiny_model()
    assert model.modalities == ["video", "audio", "text"] and model.backbones["video"].out_dim == 64
    batch = {"video": torch.randn(2, 4, 3, 8, 32, 32), "audio": torch.randn(2, 4, 1, 40, 99),
             "text": torch.randint(1, 257, (2, 12)), "text_len": torch.tensor([5, 12]), "key": ["a", "b"]}
    out = model(batch, maps=True)
    assert out["video"].shape == (2, 4, 32) and out["audio"].shape == (2, 4, 32) and out["text"].shape == (2, 32)
    assert out["video_map"].shape == (2, 4, 64, 1, 2, 2)
    assert torch.allclose(out["audio"].norm(dim=-1), torch.ones(2, 4))
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()  # views are independent samples: one view alone embeds the same
    with torch.no_grad():
        alone = model({"audio": batch["audio"][:, 1]})
        assert torch.allclose(alone["audio"], model({"audio": batch["audio"]})["audio"][:, 1], atol=1e-6)
    assert set(alone) == {"audio"}  # modalities missing from the batch are left out


def test_av_model_config_and_shape_errors():
    model = tiny_model(**{"text.name": "''"})
    assert "text" not in model.modalities
    with pytest.raises(ValueError, match=r"batch\['video'\].*got shape \(3, 32, 32\)"):
        model({"video": torch.randn(3, 32, 32)})
    with pytest.raises(ConfigError, match="unknown video backbone 'nope'"):
        tiny_model(**{"video.name": "nope"})
    with pytest.raises(ConfigError, match="unknown option 'depth'"):
        tiny_model(**{"audio.args.depth": 3})
