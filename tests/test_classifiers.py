"""The domain classifiers' network and training recipe (smoke tests; accuracy is in test_metrics)."""
import math

import pytest
import torch

from gencourse import classifiers, recipes


def test_network_shapes_and_feature_layer():
    torch.manual_seed(0)
    model = classifiers.DomainClassifier().eval()
    x = torch.rand(5, 28, 28)  # (N, 28, 28) is accepted too
    f = model.features(x)
    assert f.shape == (5, 128) and (f >= 0).all()  # after the ReLU
    assert torch.allclose(model(x), model.fc2(f))  # logits = last layer of the features
    with pytest.raises(ValueError, match="expected images"):
        model(torch.rand(5, 1, 32, 32))


def test_learning_rate_schedule():
    cfg = dict(steps=100, lr=1.0, warmup=0.2)
    lrs = [classifiers.lr_at(s, cfg) for s in range(100)]
    assert lrs[19] == pytest.approx(1.0) and lrs[0] == pytest.approx(0.05)  # linear warm-up over 20 steps
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:])) and lrs[-1] < 1e-3  # cosine down to ~0
    assert classifiers.lr_at(150, cfg) == pytest.approx(0.0)  # past the end (e.g. --steps larger): stays at 0
    assert math.isfinite(classifiers.lr_at(0, dict(steps=1, lr=1.0, warmup=0.0)))


@pytest.mark.parametrize("name", ["classifier-mnist", "classifier-fashion"])
def test_recipe_trains_and_evaluates(name):
    trainer, modules, cfg = recipes.build_trainer(name, {"steps": 4, "batch_size": 64}, progress="off", log_every=2)
    trainer.fit(steps=4)
    assert trainer.step == 4 and math.isfinite(trainer.history.last("loss"))
    assert cfg["dataset"] == name.split("-")[1]
    shipped = classifiers.as_shipped(modules["model"])
    for k, v in shipped.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(v, v.half().float()), k
    with pytest.raises(ValueError, match="trains on"):
        recipes.get(name).config(dataset="cifar10")
