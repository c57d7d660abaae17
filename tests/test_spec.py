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


def test_static_and_traced_split():
    """Options that change no code (the traced numbers, bookkeeping) leave `Static` equal, so
    such runs share one compiled program; shapes and code options change it."""
    import jax.numpy as jnp

    from resflow.training._config import static_of, traced_of

    base = rf.TrainConfig()
    static = static_of(base, 4, 3, 100)
    numbers = dict(lr=0.1, h=0.5, w_std=2.0, depth_tol=0.3, epochs=7, checkpoint_every=3, chunk_epochs=2)
    same = static_of(base.replace(**numbers), 4, 3, 100)
    assert same == static and hash(same) == hash(static)
    for change in (
        dict(depth=5),
        dict(batch_size=32),
        dict(optimizer="sgd"),
        dict(depth_adapt=True),
        dict(weight_decay=0.1),
        dict(schedule="cosine"),
        dict(model="mlp"),
        dict(min_depth=2),
    ):
        assert static_of(base.replace(**change), 4, 3, 100) != static, change
    assert static_of(base, 4, 3, 200) != static  # 4 steps per epoch instead of 2 (batch 64)
    cosine = base.replace(schedule="cosine")  # the horizon of a decaying schedule is code
    assert static_of(cosine.replace(epochs=7), 4, 3, 100) != static_of(cosine, 4, 3, 100)
    one = traced_of(base.replace(**numbers, weight_decay=0.25), jnp.float32)
    assert [float(v) for v in one] == [float(jnp.float32(v)) for v in (0.1, 0.5, 2.0, 0.3, 0.25)]
    many = traced_of([base, base.replace(h=0.5)], jnp.float32)
    assert many.h.shape == (2,) and list(map(float, many.h)) == [1.0, 0.5]
