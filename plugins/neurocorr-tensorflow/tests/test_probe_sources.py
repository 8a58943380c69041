"""Probes straight from TensorFlow: tensors and tf.data pipelines (batched or not, with labels or
not) give the numpy probe's results, streamed; a pipeline that reshuffles is refused."""

import numpy as np
import pytest
import tensorflow as tf

from neurocorr_core import NeurocorrError, StreamProbe, compare, load_probe
from tf_models import functional_cnn


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(120, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(images):
    return compare(functional_cnn(), functional_cnn(), images, batch_size=32, layers_b="conv*")


def assert_same(result, ref):
    assert result.samples == ref.samples
    assert result.score.a_to_b == pytest.approx(ref.score.a_to_b, abs=1e-7)
    assert result.score.b_to_a == pytest.approx(ref.score.b_to_a, abs=1e-7)
    np.testing.assert_allclose(result.layer_table, ref.layer_table, atol=1e-7)


def test_a_tensor_is_a_probe(images, reference):
    assert_same(compare(functional_cnn(), functional_cnn(), tf.constant(images), batch_size=32, layers_b="conv*"),
                reference)


@pytest.mark.parametrize("batch", [None, 1, 7, 50])
@pytest.mark.parametrize("labels", [False, True])
def test_tf_data_streams_with_the_numpy_results(images, reference, batch, labels):
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(len(images))) if labels else images)
    if batch:
        ds = ds.batch(batch)
    probe = load_probe(ds)
    assert isinstance(probe, StreamProbe) and len(probe) == 120
    assert_same(compare(functional_cnn(), functional_cnn(), ds, batch_size=32, layers_b="conv*"), reference)


def test_a_reshuffling_pipeline_is_refused(images):
    ds = tf.data.Dataset.from_tensor_slices(images).shuffle(120, seed=None).batch(16)
    with pytest.raises(NeurocorrError, match="shuffled"):
        compare(functional_cnn(), functional_cnn(), ds)
