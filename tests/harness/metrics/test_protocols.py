"""Each MJHQ feature protocol equals its reference library's own pipeline on the same images and weights.

Fast tests compare features (and the statistics built from them), which fixes every FID computed
from them; the ``slow`` tests compare the final FID numbers (a 2048-d ``sqrtm`` costs ~10 s each on
this machine). Backbones are seeded random: FID-Inception in pytorch-fid's file format
(``random_state_dict``), tiny DINOv2 / CLIP in the libraries' own classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.metrics.fid import FeatureStats, fid_from_stats
from harness.metrics.protocols import BackboneConfig, ProtocolsConfig, build_protocols
from tests.harness.data.fake_mjhq import picture

RANDOM = BackboneConfig(random_init_seed=0)
TINY = BackboneConfig(random_init_seed=0, size="tiny")


def _protocols(*names):
    return {p.name: p for p in build_protocols(ProtocolsConfig(names, RANDOM, TINY, TINY))}


def _folder(root: Path, seeds, size=(96, 80), fmt="JPEG") -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for s in seeds:
        p = root / f"{s:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        picture(s, 128).resize(size, Image.BILINEAR).save(p, format=fmt)
        out.append(p)
    return out


def _decoded(files):
    return [Image.open(f).convert("RGB") for f in files]


@pytest.fixture(scope="module")
def inception_protocols():
    return _protocols("sana", "clean_fid", "torch_fidelity")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol_folders")
    return _folder(root / "a", range(4)), _folder(root / "b", range(10, 14), size=(80, 96), fmt="PNG")


def _pytorch_fid_sana_activations(files, net):
    """Sana's compute_fid.py: pytorch-fid's ImagePathDataset with Resize(512) + CenterCrop(512) + ToTensor."""
    from pytorch_fid.fid_score import ImagePathDataset
    from torchvision import transforms as T

    ds = ImagePathDataset([str(f) for f in files], transforms=T.Compose([T.Resize(512), T.CenterCrop(512),
                                                                        T.ToTensor()]))
    batch = torch.stack([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        return net(batch)[0].squeeze(3).squeeze(2).numpy()


def test_sana_features_equal_pytorch_fid_pipeline(inception_protocols, folders):
    from harness.metrics.inception import build_library_network, random_state_dict

    net = build_library_network("bilinear_pytorch", random_state_dict(0))  # pytorch-fid's own InceptionV3
    for files in folders:
        ref = _pytorch_fid_sana_activations(files, net)
        ours = inception_protocols["sana"].features(_decoded(files))
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)
        st = FeatureStats.from_features(ours)
        np.testing.assert_allclose(st.mean, np.mean(ref, axis=0), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(st.cov, np.cov(ref, rowvar=False), rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_sana_fid_equals_pytorch_fid_to_1e6(inception_protocols, folders):
    from pytorch_fid.fid_score import calculate_frechet_distance

    from harness.metrics.inception import build_library_network, random_state_dict

    net = build_library_network("bilinear_pytorch", random_state_dict(0))
    a, b = (_pytorch_fid_sana_activations(f, net) for f in folders)
    ref = calculate_frechet_distance(np.mean(a, 0), np.cov(a, rowvar=False), np.mean(b, 0), np.cov(b, rowvar=False))
    p = inception_protocols["sana"]
    ours = fid_from_stats(*(FeatureStats.from_features(p.features(_decoded(f))) for f in folders))
    assert ours == pytest.approx(ref, rel=1e-6)


@pytest.fixture
def clean_fid_with_our_weights(monkeypatch):
    """clean-fid's builder hands out our weights instead of downloading its TorchScript Inception."""
    import cleanfid.features

    from harness.metrics.inception import build_library_network, random_state_dict

    class OurInceptionV3W(torch.nn.Module):  # clean-fid's InceptionV3W.forward without resize_inside
        def __init__(self, path, download=True, resize_inside=False):
            super().__init__()
            assert not resize_inside
            self.net = build_library_network("bilinear_pytorch", random_state_dict(0), resize_input=False,
                                             normalize_input=False)

        def forward(self, x):
            assert x.shape[2] == 299 and x.shape[3] == 299
            return self.net((x - 128) / 128)[0].view(x.shape[0], 2048)

    monkeypatch.setattr(cleanfid.features, "InceptionV3W", OurInceptionV3W)
    return cleanfid.features.build_feature_extractor("clean", device=torch.device("cpu"), use_dataparallel=False)


def test_clean_fid_features_equal_clean_fids_folder_features(inception_protocols, folders, clean_fid_with_our_weights):
    from cleanfid.fid import get_folder_features

    for files in folders:
        ref = get_folder_features(str(files[0].parent), clean_fid_with_our_weights, num_workers=0, batch_size=8,
                                  device=torch.device("cpu"), mode="clean", verbose=False)
        ours = inception_protocols["clean_fid"].features(_decoded(sorted(files)))
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_clean_fid_fid_equals_compute_fid(inception_protocols, folders, clean_fid_with_our_weights):
    from cleanfid import fid as cfid

    ref = cfid.compute_fid(str(folders[0][0].parent), str(folders[1][0].parent), mode="clean", num_workers=0,
                           batch_size=8, device=torch.device("cpu"), verbose=False, use_dataparallel=False)
    p = inception_protocols["clean_fid"]
    ours = fid_from_stats(*(FeatureStats.from_features(p.features(_decoded(f))) for f in folders))
    assert ours == pytest.approx(ref, rel=1e-5)


def test_protocols_see_different_inputs_from_one_picture(inception_protocols):
    """The three Inception protocols differ only in preprocessing, and it shows in the features."""
    img = picture(3, 128).resize((200, 150))
    f = {n: p.features([img])[0] for n, p in inception_protocols.items()}
    assert f["sana"].shape == f["clean_fid"].shape == f["torch_fidelity"].shape == (2048,)
    assert not np.allclose(f["sana"], f["clean_fid"], rtol=1e-3)
    assert not np.allclose(f["clean_fid"], f["torch_fidelity"], rtol=1e-3)
    # one weights file, read once, identical identity in every description
    assert len({p.describe()["weights"] for p in inception_protocols.values()}) == 1


def test_fd_dinov2_equals_direct_dgm_eval_computation(folders):
    import torchvision.transforms as TF
    from pytorch_fid.fid_score import calculate_frechet_distance
    from transformers import Dinov2Model

    from harness.metrics.protocols import dinov2_config

    torch.manual_seed(0)  # the same seeded init as the protocol's backbone
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Dinov2Model(dinov2_config("tiny")).eval()
    transform = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor(),
                            TF.Normalize(np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))])

    def direct(files):
        with torch.no_grad():
            out = model(pixel_values=torch.stack([transform(Image.open(f).convert("RGB")) for f in files]))
        cls = out.last_hidden_state[:, 0]  # dinov2 hub forward: x_norm_clstoken (after the final norm)
        torch.testing.assert_close(out.pooler_output, cls)
        return cls.double().numpy()

    a, b = (direct(f) for f in folders)
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    p = _protocols("fd_dinov2")["fd_dinov2"]
    fa, fb = (p.features(_decoded(f)) for f in folders)
    np.testing.assert_allclose(fa, a, rtol=1e-5, atol=1e-6)
    ours = fid_from_stats(FeatureStats.from_features(fa), FeatureStats.from_features(fb))
    assert ours == pytest.approx(ref, rel=1e-5)


def test_cmmd_equals_direct_google_research_computation(folders):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from harness.metrics.protocols import clip_vision_config, cmmd

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPVisionModelWithProjection(clip_vision_config("tiny")).eval()
    processor = CLIPImageProcessor()

    def read(path, size=336):  # cmmd io_util._read_image with _center_crop_and_resize
        im = Image.open(path)
        w, h = im.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), resample=Image.BICUBIC)
        return np.asarray(im).astype(np.float32)

    def embed(files):  # cmmd embedding.ClipEmbeddingModel.embed
        images = np.stack([read(f) for f in files]) / 255.0
        t = torch.from_numpy(images.transpose(0, 3, 1, 2))
        t = torch.nn.functional.interpolate(t, size=(336, 336), mode="bicubic")
        images = t.permute(0, 2, 3, 1).numpy()
        inputs = processor(images=images, do_normalize=True, do_center_crop=False, do_resize=False,
                           do_rescale=False, return_tensors="pt")
        with torch.no_grad():
            e = model(**inputs).image_embeds
        return (e / torch.linalg.norm(e, axis=-1, keepdims=True)).double().numpy()

    def mmd(x, y, sigma=10, scale=1000):  # cmmd distance.mmd
        gamma = 1 / (2 * sigma ** 2)
        xx, yy, xy = x @ x.T, y @ y.T, x @ y.T
        xs, ys = np.diag(xx), np.diag(yy)
        k_xx = np.mean(np.exp(-gamma * (-2 * xx + xs[:, None] + xs[None, :])))
        k_yy = np.mean(np.exp(-gamma * (-2 * yy + ys[:, None] + ys[None, :])))
        k_xy = np.mean(np.exp(-gamma * (-2 * xy + xs[:, None] + ys[None, :])))
        return scale * (k_xx + k_yy - 2 * k_xy)

    a, b = (embed(f) for f in folders)
    p = _protocols("cmmd")["cmmd"]
    fa, fb = (p.features(_decoded(f)) for f in folders)
    np.testing.assert_allclose(fa, a, rtol=1e-4, atol=1e-5)
    assert cmmd(fa, fb) == pytest.approx(mmd(a, b), rel=1e-4)
    assert cmmd(fa, fa) == pytest.approx(0.0, abs=1e-9)


def test_features_do_not_depend_on_batch_padding(inception_protocols, folders):
    p = inception_protocols["torch_fidelity"]
    pics = _decoded(folders[0][:2])
    whole = p.features(pics, pad_to=3)
    one = np.concatenate([p.features([x], pad_to=3) for x in pics])
    np.testing.assert_array_equal(whole, one)


def test_unknown_protocol_is_named():
    from harness.metrics.protocols import UnknownProtocolError, check_names

    with pytest.raises(UnknownProtocolError, match=r"unknown protocol 'cleanfid'. Did you mean 'clean_fid'"):
        check_names(["sana", "cleanfid"])


def test_clip_score_is_100_cosine_without_clamp():
    from harness.metrics.clip_score import CLIPScorer

    scorer = CLIPScorer(random_init_seed=0, size="tiny")
    pics = [picture(s, 64) for s in range(3)]
    prompts = ["a red dog", "a house", "logo"]
    got = scorer(pics, prompts)
    with torch.no_grad():
        img = scorer.model.encode_image(torch.stack([scorer.preprocess(p) for p in pics]))
        txt = scorer.model.encode_text(scorer.tokenizer(prompts))
    want = 100 * torch.nn.functional.cosine_similarity(img, txt).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert scorer.describe()["real_weights"] is False


def test_torch_fidelity_features_equal_torch_fidelitys_own_folder_pipeline(inception_protocols, folders, tmp_path):
    from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id

    from harness.metrics.inception import random_state_dict

    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(random_state_dict(0), weights)  # torch-fidelity reads the local file: no download
    fx = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False,
                                  feature_extractor_weights_path=str(weights))
    files = folders[0]
    ref = extract_featuresdict_from_input_id(1, fx, input1=str(files[0].parent), batch_size=8, cuda=False,
                                             save_cpu_ram=True, verbose=False)["2048"].double().numpy()
    ours = inception_protocols["torch_fidelity"].features(_decoded(sorted(files)))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
