"""TrunkSpec / TrainConfig: one field per option, routed overrides, JSON round trip, validation."""

import dataclasses
import json

import pytest

import resflow as rf


def test_replace_routes_trunk_and_training_options():
    c = rf.TrainConfig().replace(depth=5, model="mlp", epochs=3, lift=True)
    assert c.trunk == rf.TrunkSpec(depth=5, model="mlp") and (c.epochs, c.lift) == (3, True)
    assert c.replace(trunk=rf.TrunkSpec(width=4), h=0.5).trunk == rf.TrunkSpec(width=4, h=0.5)
    with pytest.raises(TypeError, match="widht"):
        c.replace(widht=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.trunk.depth = 3


def test_json_round_trip():
    c = rf.TrainConfig(trunk=rf.TrunkSpec(width=3, shared=False, activation="tanh"), clip_norm=1.0)
    assert rf.TrainConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(c)))) == c


def test_every_field_documented():
    for cls in (rf.TrunkSpec, rf.TrainConfig):
        for f in dataclasses.fields(cls):
            assert f.name == "trunk" or f.metadata["help"], f.name


@pytest.mark.parametrize(
    "options, err, match",
    [
        (dict(model="cnn"), ValueError, "model"),
        (dict(activation="swish"), ValueError, "activation"),
        (dict(width=0), ValueError, "width"),
        (dict(depth=2.5), TypeError, "depth"),
        (dict(h=0.0), ValueError, "h"),
        (dict(w_std=-1.0), ValueError, "w_std"),
        (dict(shared=1), TypeError, "shared"),
        (dict(remat="yes"), TypeError, "remat"),
        (dict(optimizer="lbfgs"), ValueError, "optimizer"),
        (dict(schedule="step"), ValueError, "schedule"),
        (dict(dtype="float16"), ValueError, "dtype"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(depth_warmup=-1), ValueError, "depth_warmup"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(clip_norm=0.0), ValueError, "clip_norm"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay"),
        (dict(min_depth=9, depth=4), ValueError, "min_depth"),
    ],
)
def test_validate_names_the_field(options, err, match):
    with pytest.raises(err, match=match):
        rf.TrainConfig().replace(**options).validate()
    with pytest.raises(TypeError, match="TrunkSpec"):
        rf.TrainConfig(trunk={"depth": 3}).validate()
