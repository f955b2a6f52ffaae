"""The ResNet family: reference parameter counts, the paper's Table 2, width multiplier, shapes."""
import json
import math

import pytest
import torch
from torch import nn

from xrais.models import Architecture, ResNet, XraisNet, parameter_count
from xrais.models.network import beam_distance_channel
from xrais.models.resnet import PointwiseConv


@pytest.mark.parametrize("depth, reference", [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032)])
def test_torchvision_configuration_has_the_reference_parameter_count(depth, reference):
    """He et al. ResNets as torchvision builds them: 3 channels in, 1000 classes out."""
    assert parameter_count(ResNet(depth, width=1.0, in_channels=3, num_features=1000)) == reference


@pytest.mark.parametrize("kind, depth, backbone, total", [
    ("resolution", 50, 25_550_760, 25_650_961),   # paper Table 2, "resolution"
    ("multilattice", 34, 21_791_400, 21_891_601),  # paper Table 2, "splitting"
])
def test_paper_table2_parameter_counts(kind, depth, backbone, total):
    network = XraisNet(Architecture(kind, depth=depth, width=1.0, features=1000))
    assert parameter_count(network.backbone) == backbone
    assert parameter_count(network) == total
    assert parameter_count(network.fc1) == 100_100 and parameter_count(network.fc2) == 101


def test_width_multiplier_scales_every_stage():
    network = ResNet(18, width=0.25)
    assert network.conv1.out_channels == 16
    assert [stage[-1].conv2.out_channels for stage in (network.layer1, network.layer2, network.layer3, network.layer4)] \
        == [16, 32, 64, 128]
    bottleneck = ResNet(50, width=0.25)
    assert bottleneck.layer4[-1].conv3.out_channels == 512 and bottleneck.fc.in_features == 512
    # Convolution weights scale as width²: a quarter-width ResNet-18 has ~1/16 of the parameters.
    full, quarter = parameter_count(ResNet(18, 1.0, num_features=10)), parameter_count(ResNet(18, 0.25, num_features=10))
    assert 12 < full / quarter < 17


def test_architecture_defaults_and_validation():
    a = Architecture("resolution", depth=18, width=0.25)
    assert a.features == 250 and a.hidden == 100 and a.input_scale == 1 / 16
    assert Architecture("multilattice", width=0.05).features == 100  # never fewer features than FC1 outputs
    assert Architecture.from_dict(a.as_dict()) == a
    for bad in (dict(kind="spots"), dict(kind="resolution", depth=20), dict(kind="resolution", norm="layer"),
                dict(kind="resolution", dropout=1.0), dict(kind="resolution", width=0)):
        with pytest.raises(ValueError):
            Architecture(**bad)


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_output_shapes_and_input_forms(norm):
    torch.manual_seed(0)
    resolution = XraisNet(Architecture("resolution", width=0.125, norm=norm)).eval()
    multilattice = XraisNet(Architecture("multilattice", width=0.125, norm=norm)).eval()
    images = torch.randint(0, 40, (3, 512, 512), dtype=torch.int32)
    geometry = torch.tensor([[0.9795, 250.0, 0.172, 2.0]] * 3)
    assert resolution.backbone(images[:, None].float()).shape == (3, 125)
    with torch.no_grad():
        from_3d = resolution(images, geometry)
        from_4d = resolution(images[:, None].float(), geometry)
        logits = multilattice(images)
    assert from_3d.shape == (3,) and from_3d.dtype == torch.float32 and logits.shape == (3,)
    torch.testing.assert_close(from_3d, from_4d)
    with pytest.raises(ValueError, match="geometry"):
        resolution(images)


def test_channels_last_gives_the_same_result():
    torch.manual_seed(1)
    network = XraisNet(Architecture("multilattice", width=0.125)).eval()
    images = torch.rand(2, 1, 512, 512) * 30
    with torch.no_grad():
        reference = network(images)
        network = network.to(memory_format=torch.channels_last)
        fast = network(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)


def test_pointwise_stride_matches_conv2d_and_survives_channels_last_backward():
    """The strided 1×1 projection equals nn.Conv2d and its channels_last backward with 8 channels
    (a oneDNN crash with nn.Conv2d) completes."""
    torch.manual_seed(2)
    ours, reference = PointwiseConv(8, 16, 1, stride=2, bias=False), nn.Conv2d(8, 16, 1, stride=2, bias=False)
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(2, 8, 65, 65).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ours = ours.to(memory_format=torch.channels_last)
    contiguous_x = x.detach().contiguous().requires_grad_(True)
    y, expected = ours(x), reference(contiguous_x)
    torch.testing.assert_close(y, expected)
    grad_x, grad_w = torch.autograd.grad(y.square().sum(), [x, ours.weight])
    ref_x, ref_w = torch.autograd.grad(expected.square().sum(), [contiguous_x, reference.weight])
    torch.testing.assert_close(grad_x, ref_x)
    torch.testing.assert_close(grad_w, ref_w, rtol=1e-5, atol=1e-5)


def test_radius_channel_is_the_distance_from_the_beam_corner():
    """Pixel centres (s + ½, f + ½) from the beam at the outer corner of pixel (0, 0), 0.1 per
    quadrant width; symmetric under the training transposition."""
    channel = beam_distance_channel(512, 512, "cpu")[0, 0]
    assert channel.shape == (512, 512)
    assert channel[0, 0].item() == pytest.approx(0.1 * math.hypot(0.5, 0.5) / 512)
    assert channel[511, 0].item() == pytest.approx(0.1 * math.hypot(511.5, 0.5) / 512)
    assert channel[300, 400].item() == pytest.approx(0.1 * math.hypot(300.5, 400.5) / 512)
    torch.testing.assert_close(channel, channel.T)


def test_coordinates_add_a_stem_channel_and_survive_export(tmp_path):
    """With coordinates the stem takes (image, radius); the card records it, and loading the
    weights into a network without it is refused (the stem's shape differs)."""
    from xrais import models

    torch.manual_seed(3)
    network = XraisNet(Architecture("resolution", width=0.125, coordinates=True)).eval()
    assert network.backbone.conv1.in_channels == 2
    assert XraisNet(Architecture("resolution", width=0.125)).backbone.conv1.in_channels == 1
    assert "radius channel" in network.architecture.label
    images = torch.randint(0, 40, (2, 512, 512))
    geometry = torch.tensor([[0.9795, 250.0, 0.172, 2.0]] * 2)
    card = models.export(network, tmp_path / "m")
    loaded = models.load(card, device="cpu")
    assert loaded.network.architecture.coordinates
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(images, geometry), network(images, geometry))
    # The radius channel is what the network sees besides the image: zeroing the stem's weights
    # on it gives another answer.
    with torch.no_grad():
        reference = network(images, geometry)
        network.backbone.conv1.weight[:, 1] = 0.0
        assert not torch.allclose(network(images, geometry), reference)
    text = json.loads(card.read_text())
    text["architecture"]["coordinates"] = False
    card.write_text(json.dumps(text))
    with pytest.raises(models.ModelError, match="do not fit the architecture"):
        models.load(card)
