import hashlib
import os
import subprocess
import sys

import pytest
import torch

from gencourse import data
from gencourse.data import datasets, sources, specs

# Published class counts of the official splits (an independent reference).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("name,split,n,counts", [
    ("mnist", "train", 60000, MNIST_TRAIN_COUNTS),
    ("mnist", "test", 10000, MNIST_TEST_COUNTS),
    ("fashion", "train", 60000, [6000] * 10),
    ("fashion", "test", 10000, [1000] * 10),
])
def test_load_official_splits(name, split, n, counts):
    x, y = data.load(name, split)
    assert x.shape == (n, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (n,) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == counts
    assert int(x.max()) == 255 and int(x.min()) == 0
    assert len(data.CLASSES[name]) == 10


def test_load_is_cached_in_process():
    a, _ = data.load("mnist", "test")
    b, _ = data.load("mnist", "test")
    assert a is b


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        data.load("cifar")
    with pytest.raises(ValueError, match="split must be"):
        data.load("mnist", "valid")
    with pytest.raises(ValueError, match="unknown data source"):
        data.load("mnist", "test", sources=("cache", "internet"))


@pytest.fixture
def offline_root(tmp_path, monkeypatch):
    """A fresh cache whose offline folder points at the real offline packages (fetched by `make data`)."""
    real = data.data_root() / "offline"
    if not (real / "dataset-fashion-mnist").is_dir() or sources._find_mnist_wheel(data.data_root()) is None:
        pytest.fail("the offline packages are missing: run `python -m gencourse data` first")
    (tmp_path / "offline").symlink_to(real)
    monkeypatch.setattr(sources, "SYSTEM_FASHION_DIRS", ())
    datasets._load_cached.cache_clear()
    yield tmp_path
    datasets._load_cached.cache_clear()


@pytest.mark.parametrize("name", ["mnist", "fashion"])
def test_offline_packages_give_the_official_bytes(offline_root, name):
    x, y = data.load(name, "test", root=offline_root, sources=("offline",))
    ref_x, ref_y = data.load(name, "test")
    assert torch.equal(x, ref_x) and torch.equal(y, ref_y)
    # the cache now holds files whose SHA-256 is that of the official uncompressed IDX files
    raw = offline_root / name / "raw"
    for fname in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        digest = hashlib.sha256((raw / fname).read_bytes()).hexdigest()
        assert digest == specs._SPECS[name].files[fname][0]


def test_corrupt_cache_is_rejected_and_repaired(offline_root):
    data.load("fashion", "test", root=offline_root, sources=("offline",))
    target = offline_root / "fashion" / "raw" / "t10k-labels-idx1-ubyte"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 1  # flip one bit of one label
    target.write_bytes(bytes(blob))
    datasets._load_cached.cache_clear()
    with pytest.raises(data.DataUnavailableError, match="sha256"):
        data.load("fashion", "test", root=offline_root, sources=("cache",))
    datasets._load_cached.cache_clear()
    x, y = data.load("fashion", "test", root=offline_root, sources=("cache", "offline"))
    assert torch.bincount(y).tolist() == [1000] * 10
    assert hashlib.sha256(target.read_bytes()).hexdigest() == specs._SPECS["fashion"].files[target.name][0]


def test_missing_sources_give_an_actionable_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "SYSTEM_FASHION_DIRS", ())
    datasets._load_cached.cache_clear()
    with pytest.raises(data.DataUnavailableError) as err:
        data.load("fashion", "train", root=tmp_path, sources=("cache", "offline"))
    msg = str(err.value)
    assert "Sources tried" in msg and "- cache:" in msg and "- offline:" in msg
    assert "python -m gencourse data" in msg and str(tmp_path / "fashion" / "raw") in msg
    datasets._load_cached.cache_clear()


def test_cli_without_sources_fails_cleanly(tmp_path):
    env = dict(os.environ, GENCOURSE_DATA=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "gencourse", "data", "mnist", "--no-fetch"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "could not find a verified copy of MNIST" in res.stderr and "python -m gencourse data" in res.stderr


def test_to_float_and_subset():
    x, y = data.load("mnist", "test")
    f = data.to_float(x[:5])
    assert f.shape == (5, 1, 28, 28) and f.dtype == torch.float32
    assert torch.allclose(f[0, 0], x[0].float() / 255)
    with pytest.raises(TypeError, match="uint8"):
        data.to_float(f)
    xs, ys = data.subset(x, y, 1000, seed=0)
    assert torch.bincount(ys).tolist() == [100] * 10
    xs2, ys2 = data.subset(x, y, 1000, seed=0)
    assert torch.equal(xs, xs2) and torch.equal(ys, ys2)
    _, ys3 = data.subset(x, y, 1000, seed=1)
    assert not torch.equal(ys, ys3)
    with pytest.raises(ValueError):
        data.subset(x, y, 0)


def test_batch_iterator_epochs_are_permutations():
    x = torch.arange(103)
    it = data.BatchIterator(x, batch_size=10, seed=5)
    assert len(it) == 10
    epoch0 = torch.cat(list(it))
    assert len(epoch0) == 100 and len(set(epoch0.tolist())) == 100
    epoch1 = torch.cat(list(it))
    assert not torch.equal(epoch0, epoch1)  # reshuffled each epoch
    again = data.BatchIterator(x, batch_size=10, seed=5)
    assert torch.equal(torch.cat(list(again)), epoch0)  # reproducible from the seed
    full = data.BatchIterator(x, batch_size=10, shuffle=False, drop_last=False)
    assert torch.equal(torch.cat(list(full)), x) and len(full) == 11


def test_batch_iterator_resumes_mid_epoch():
    x = torch.arange(50)
    it = data.BatchIterator(x, batch_size=5, seed=1)
    whole = list(it.batches(epoch=3))
    tail = list(it.batches(epoch=3, start=4))
    assert all(torch.equal(a, b) for a, b in zip(whole[4:], tail))


def test_batch_iterator_shards_like_one_big_batch():
    x, y = torch.arange(64), torch.arange(64) * 10
    single = data.BatchIterator(x, y, batch_size=8, seed=2)
    ranks = [data.BatchIterator(x, y, batch_size=4, seed=2, rank=r, world_size=2) for r in range(2)]
    for (xs, ys), (a, _), (b, _) in zip(single.batches(0), ranks[0].batches(0), ranks[1].batches(0)):
        assert torch.equal(xs, torch.cat([a, b])) and torch.equal(ys, xs * 10)


def test_batch_iterator_transform_and_errors():
    x = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    it = data.BatchIterator(x, batch_size=4, transform=lambda b: data.to_float(b))
    b = next(iter(it))
    assert b.shape == (4, 1, 28, 28) and b.dtype == torch.float32
    with pytest.raises(ValueError, match="same first dimension"):
        data.BatchIterator(x, torch.zeros(3), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        data.BatchIterator(x, batch_size=21)


def test_ring_of_gaussians_matches_its_definition(gen):
    x, mode = data.ring_of_gaussians(20000, k=8, radius=2.0, std=0.05, generator=gen)
    centres = data.ring_modes(8, 2.0)
    assert torch.allclose(centres.norm(dim=1), torch.full((8,), 2.0))
    resid = x - centres[mode]
    assert abs(float(resid.std()) - 0.05) < 0.002           # Monte Carlo std of the noise
    counts = torch.bincount(mode, minlength=8).double() / 20000
    assert float((counts - 1 / 8).abs().max()) < 0.01       # equal mixture weights
    nearest = torch.cdist(x, centres).argmin(1)
    assert torch.equal(nearest, mode)                        # modes well separated


def test_two_moons(gen):
    x, y = data.two_moons(2000, noise=0.0, generator=gen)
    upper = x[y == 0]
    assert torch.allclose(upper.norm(dim=1), torch.ones(len(upper)), atol=1e-5)
    lower = x[y == 1] - torch.tensor([1.0, 0.5])
    assert torch.allclose(lower.norm(dim=1), torch.ones(len(lower)), atol=1e-5)
