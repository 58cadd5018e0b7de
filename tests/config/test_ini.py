"""tkam.config.ini: the reference implementation's .ini configs (configs 2)."""

from __future__ import annotations

import pytest

from tkam.config import ConfigError, from_ini
from tkam.config.ini import DATASET_NAMES
from tkam.data import DATASETS

NIST_HEAD = """\
[EbmModel]
layer_widths = 40, 81
spline_degree = 3
layernorm = false
base_activation = silu
spline_function = RBF
grid_size = 20
grid_update_ratio = 0.05
grid_range = -1.2,1.2
ε_scale = 0.1
μ_scale = 1
σ_base = 1
σ_spline = 1
init_τ = 1
τ_trainable = true
π_0 = ebm
GaussQuad_nodes = 100
quadrature_method = gausslegendre

[MixtureModel]
use_mixture_prior = false
λ_reg = 0.0
use_attention_kernel = false
train_proportions = false

[GeneratorModel]
widths = 201, 202
spline_degree = 3
base_activation = silu
spline_function = RBF
grid_size = 20
grid_range = -1.2,1.2
generator_variance = 0.1
generator_noise = 0.1
output_activation = sigmoid
resampler = residual

[GRID_UPDATING]
update_prior_grid = true
update_llhood_grid = true
num_grid_updating_samples = 100
grid_update_frequency = 100
grid_update_decay = 0.999

[POST_LANGEVIN]
use_langevin = true

[TRAINING]
batch_size = 100
importance_sample_size = 100
N_train = 50000
N_test = 100
N_epochs = 10
contrastive_divergence_training = true
resampling_threshold_factor = 0.5
eps = 0.0001

[OPTIMIZER]
type = adam
learning_rate = 01
"""


def test_nist_config_maps_onto_ours(tmp_path) -> None:
    path = tmp_path / "nist_config.ini"
    path.write_text(NIST_HEAD, encoding="utf-8")
    with pytest.warns(UserWarning) as record:
        config = from_ini(path, dataset="FMNIST")
    messages = " ".join(str(w.message) for w in record)
    assert "A13" in messages and "A14" in messages
    prior, gen, train = config.prior, config.generator, config.train
    assert prior.widths == (40, 81) and prior.basis == "rbf" and prior.reference == "ebm"
    assert prior.grid_range == (-1.2, 1.2) and prior.num_nodes == 100 and not prior.mixture
    assert prior.eps_scale == 0.1 and prior.tau_trainable
    assert gen.widths == (81, 162) and gen.variance == 0.1 and gen.noise == 0.1
    assert train.batch_size == 100 and train.importance_samples == 100
    assert train.learning_rate == 1e-3 and train.resampler == "residual"
    assert config.data.name == "fmnist" and config.data.num_train == 50000
    assert config.grid_update.decay == 0.999
    # The Langevin settings are reported and dropped, so the implied loss is importance sampling.
    assert config.train.loss == "importance" and config.train.loss == "importance"


def test_cnn_config_is_refused_with_the_key(tmp_path) -> None:
    path = tmp_path / "svhn.ini"
    path.write_text(NIST_HEAD + "\n[CNN]\nuse_cnn_lkhood = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="use_cnn_lkhood"):
        from_ini(path)


def test_bad_value_names_the_file(tmp_path) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(NIST_HEAD.replace("batch_size = 100", "batch_size = lots"), encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.ini.*train.batch_size"), pytest.warns(UserWarning):
        from_ini(path)


@pytest.mark.parametrize(("reference", "domain"), [("gaussian", (-1.2, 1.2)), ("ebm", (-1.0, 1.0))])
def test_the_prior_grid_range_is_kept_only_where_it_is_the_domain(
    tmp_path, reference, domain
) -> None:
    # The reference's v4 configs state grid_range = -1,1 with a Gaussian pi_0, whose domain is
    # fixed: the value has no effect there, so it is dropped, not refused.
    text = NIST_HEAD.replace("π_0 = ebm", f"π_0 = {reference}")
    text = text.replace("grid_range = -1.2,1.2", "grid_range = -1,1", 1)
    path = tmp_path / "v4.ini"
    path.write_text(text, encoding="utf-8")
    with pytest.warns(UserWarning):
        config = from_ini(path, dataset="FMNIST")
    assert config.prior.reference == reference and config.prior.grid_range == domain
    assert config.generator.grid_range == (-1.2, 1.2)


def test_an_unknown_data_set_is_refused(tmp_path) -> None:
    path = tmp_path / "nist.ini"
    path.write_text(NIST_HEAD, encoding="utf-8")
    with pytest.raises(ConfigError, match="dataset='NOPE' is not one of tkam's data sets"):
        from_ini(path, dataset="NOPE")
    with pytest.warns(UserWarning):
        assert from_ini(path, dataset="FMNIST").data.name == "fmnist"


def test_the_data_set_names_are_the_registry_s() -> None:
    assert sorted(DATASET_NAMES) == sorted(DATASETS)
