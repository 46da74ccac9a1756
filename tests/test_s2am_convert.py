"""S2AM converter: the authors' checkpoint files → ``inharmony.load`` / ``inharmony convert s2am-official``.

State dicts are synthesised in the authors' key names and shapes by ``s2am_reference`` (independently of
our model and key mapping), saved as their ``save_checkpoint`` saves them (``{"epoch", "arch",
"state_dict", "best_acc", "optimizer"}``, DataParallel's ``module.`` prefix, the legacy pre-1.6 file
format their PyTorch 0.4 wrote), loaded through :func:`inharmony.load`, and compared with the
reference forward on the same weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import inharmony
from inharmony.errors import CheckpointError, OfficialCheckpointError, OutputExistsError
from inharmony.models.converters import find_converter
from inharmony.models.converters.s2am import convert_s2am, load_s2am, official_key
from s2am_reference import official_forward, official_shapes, official_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5
NUM_DOWNS, NGF = 6, 16


def adam_state() -> dict:
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    return optimizer.state_dict()


def save_authors_file(
    path: Path, state: dict, arch: str | None, prefix: str = "module.", legacy: bool = True, wrap: bool = True
) -> Path:
    """As their ``save_checkpoint``: the PyTorch 0.4 (legacy, non-zip) format unless ``legacy=False``."""
    state = {prefix + k: v for k, v in state.items()}
    payload = {"epoch": 60, "arch": arch, "state_dict": state, "best_acc": 33.1, "optimizer": adam_state()}
    torch.save(payload if wrap else state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("s2am")
    rascv2 = official_state_dict("rascv2", NUM_DOWNS, seed=11, ngf=NGF)
    masked = official_state_dict("maskedurasc", NUM_DOWNS, seed=12, ngf=NGF)
    return {
        "rascv2": (save_authors_file(root / "rascv2.pth.tar", rascv2, "rascv2"), rascv2),
        "maskedurasc": (save_authors_file(root / "model_best.pth.tar", masked, "maskedurasc"), masked),
    }


def composite(height: int = 64, width: int = 64, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, height, width, generator=gen)
    mask = torch.zeros(2, 1, height, width)
    mask[:, :, 10:40, 16:60] = 1.0
    mask[1] *= 0.6
    return image, mask


# --------------------------------------------------------------------------- loading equals their network


def test_authors_s2ad_file_loads_and_equals_their_network(files) -> None:
    path, sd = files["rascv2"]
    assert find_converter(str(path)).name == "s2am-official"
    model = inharmony.load("s2am", weights=path)
    assert not model.training and model.pretrained_cfg.architecture == "s2am"
    for size in [(64, 64), (64, 128)]:
        image, mask = composite(*size)
        with torch.no_grad():
            ours = model(image, mask)["image"]
        theirs, _, _ = official_forward(sd, torch.cat([image, mask], 1))
        assert float(theirs.std()) > 0.05
        assert (ours - theirs).abs().max() <= TOL


def test_authors_maskfree_file_loads_and_equals_their_network(files) -> None:
    path, sd = files["maskedurasc"]
    model = inharmony.load("s2am_maskfree", weights=path)
    image, _ = composite()
    with torch.no_grad():
        ours = model(image)
    image_ref, mask_ref, levels = official_forward(sd, image)
    assert (ours["image"] - image_ref).abs().max() <= TOL
    assert (ours["mask"] - mask_ref).abs().max() <= TOL
    for got, expected in zip(ours["attention"], levels, strict=True):
        assert (got - expected).abs().max() <= TOL


@pytest.mark.parametrize("legacy,wrap,prefix", [(False, True, ""), (True, False, ""), (False, False, "module.")])
def test_every_layout_of_the_file_loads(files, tmp_path, legacy, wrap, prefix) -> None:
    """Zip or legacy format, wrapped or a bare state dict, with or without ``module.``; ``urasc`` = ``maskedurasc``."""
    _, sd = files["maskedurasc"]
    path = save_authors_file(tmp_path / "urasc.pth", sd, "urasc", prefix=prefix, legacy=legacy, wrap=wrap)
    assert find_converter(str(path)).name == "s2am-official"
    model = inharmony.load("s2am_maskfree", weights=path)
    image, _ = composite(seed=4)
    with torch.no_grad():
        assert (model(image)["image"] - official_forward(sd, image)[0]).abs().max() <= TOL


def test_torch_0_4_0_files_without_num_batches_tracked_load(files, tmp_path) -> None:
    _, sd = files["rascv2"]
    old = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    model = inharmony.load("s2am", weights=save_authors_file(tmp_path / "old.pth.tar", old, "rascv2"))
    image, mask = composite(seed=5)
    with torch.no_grad():
        ours = model(image, mask)["image"]
    assert (ours - official_forward(sd, torch.cat([image, mask], 1))[0]).abs().max() <= TOL


def test_model_arguments_apply_on_top(files) -> None:
    path, sd = files["maskedurasc"]
    model = inharmony.load("s2am_maskfree", weights=path, blend=True)
    image, _ = composite(seed=6)
    with torch.no_grad():
        out = model(image)
    raw, mask, _ = official_forward(sd, image)
    assert (out["image"] - (raw * mask + image * (1 - mask))).abs().max() <= TOL


def test_every_key_maps_onto_the_authors_full_size_network() -> None:
    for name, variant in [("s2am", "rascv2"), ("s2am_maskfree", "maskedurasc")]:
        with torch.device("meta"):
            ours = inharmony.create_model(name).state_dict()
        theirs = official_shapes(variant, 8)
        names = {official_key(k): tuple(v.shape) for k, v in ours.items()}
        assert len(names) == len(ours)
        extra = {k for k in theirs if k.endswith("gaussianMask.weight")}  # constant buffers, not state here
        assert set(names) | extra == set(theirs)
        assert all(theirs[k] == shape for k, shape in names.items())
        assert len(extra) == (3 if name == "s2am" else 0)


# --------------------------------------------------------------------------- wrong files get clear errors


def test_the_other_variant_is_named(files) -> None:
    with pytest.raises(OfficialCheckpointError, match=r"holds S2AD with the mask \(rascv2\).*load it as 's2am'"):
        inharmony.load("s2am_maskfree", weights=files["rascv2"][0])
    with pytest.raises(OfficialCheckpointError, match=r"mask-free S2AM .*'maskedurasc'.*load it as 's2am_maskfree'"):
        inharmony.load("s2am", weights=files["maskedurasc"][0])
    with pytest.raises(OfficialCheckpointError, match=r"not 'dirl': load it as 's2am'"):
        inharmony.load("dirl", weights=files["rascv2"][0])


def test_an_s2asc_file_is_named(files, tmp_path) -> None:
    """rascv1 (S2ASC) has the same key names with the attention on the skip only: other shapes."""
    _, sd = files["rascv2"]
    s2asc = dict(sd)
    key = "model.model.sub.model.attention.connection.rconv1.weight"
    s2asc[key] = torch.zeros(NGF * 2, NGF, 3, 3)
    path = save_authors_file(tmp_path / "rascv1.pth.tar", s2asc, "rascv1")
    with pytest.raises(OfficialCheckpointError, match=r"'rascv1'.*skip connections only.*cannot be loaded as 's2am'"):
        inharmony.load("s2am", weights=path)


def test_missing_unexpected_and_misshapen_keys_are_named(files, tmp_path) -> None:
    _, sd = files["rascv2"]
    bad = dict(sd)
    del bad["model.model.sub.model.attention.mixed_attention.fc.2.bias"]
    bad["model.model.sub.model.attention.extra.weight"] = torch.zeros(1)
    bad["model.model.sub.model.sub.model.up.1.weight"] = torch.zeros(3, 3, 4, 4)
    path = save_authors_file(tmp_path / "bad.pth.tar", bad, "rascv2")
    with pytest.raises(OfficialCheckpointError) as info:
        inharmony.load("s2am", weights=path)
    message = str(info.value)
    assert "bad.pth.tar does not match S2AM" in message
    assert "missing key 'model.model.sub.model.attention.mixed_attention.fc.2.bias'" in message
    assert "unexpected key 'model.model.sub.model.attention.extra.weight'" in message
    assert "'model.model.sub.model.sub.model.up.1.weight' has shape (3, 3, 4, 4), expected (128, 32, 4, 4)" in message


def test_a_changed_gaussian_kernel_is_refused(files, tmp_path) -> None:
    _, sd = files["rascv2"]
    changed = dict(sd)
    changed["model.model.sub.model.attention.gaussianMask.weight"] = torch.full((1, 1, 5, 5), 0.04)
    with pytest.raises(OfficialCheckpointError, match="is not the authors' 5×5 Gaussian kernel"):
        load_s2am(save_authors_file(tmp_path / "g.pth.tar", changed, "rascv2"), "s2am")


def test_objects_outside_the_format_and_broken_files_are_refused(files, tmp_path) -> None:
    _, sd = files["rascv2"]
    evil = tmp_path / "evil.pth.tar"
    torch.save({"arch": "rascv2", "state_dict": {"module." + k: v for k, v in sd.items()}, "args": Path("x")}, evil)
    with pytest.raises(CheckpointError, match=r"weights_only=True.*trust_checkpoint=True"):
        inharmony.load("s2am", weights=evil)
    assert inharmony.load("s2am", weights=evil, trust_checkpoint=True) is not None  # the user's own file
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(files["rascv2"][0].read_bytes()[:-5000])
    assert find_converter(str(broken)).name == "s2am-official"  # the keys are near the start
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        inharmony.load("s2am", weights=broken)


def test_other_files_are_not_taken_for_s2am(tmp_path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save(inharmony.create_model("s2am", num_downs=5, base_channels=8).state_dict(), plain)
    assert find_converter(str(plain)) is None  # our own state dict goes to the plain loader
    assert inharmony.load("s2am", weights=plain, num_downs=5, base_channels=8) is not None
    (tmp_path / "text.pth.tar").write_text("not weights")
    assert find_converter(str(tmp_path / "text.pth.tar")) is None


# --------------------------------------------------------------------------- inharmony convert s2am-official


def test_convert_writes_a_hub_folder(files, tmp_path, capsys) -> None:
    path, sd = files["rascv2"]
    out = tmp_path / "hub"
    assert convert_s2am(str(path), str(out)) == 0
    assert "wrote" in capsys.readouterr().out
    loaded = inharmony.from_pretrained(out)
    image, mask = composite(seed=7)
    with torch.no_grad():
        assert (
            loaded.eval()(image, mask)["image"] - official_forward(sd, torch.cat([image, mask], 1))[0]
        ).abs().max() <= TOL
    assert "rascv2.pth.tar" in (out / "README.md").read_text()
    with pytest.raises(OutputExistsError, match="not empty"):
        convert_s2am(str(path), str(out))
    with pytest.raises(OfficialCheckpointError, match="load it as 's2am'"):
        convert_s2am(str(path), str(tmp_path / "other"), model="s2am_maskfree")


def test_convert_command_line(files, tmp_path) -> None:
    from inharmony.cli import main

    out = tmp_path / "cli_hub"
    assert main(["convert", "s2am-official", "--file", str(files["maskedurasc"][0]), "--out", str(out),
                 "--model", "s2am_maskfree"]) == 0  # fmt: skip
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
