"""snnfast/surrogate.py: the sharpness of Sigmoid and ATan under its own name, and the old
`alpha` spelling still working with a DeprecationWarning."""
import pickle
import warnings

import pytest
import torch

from snnfast import surrogate


@pytest.mark.parametrize("cls, default", [(surrogate.Sigmoid, 4.0), (surrogate.ATan, 2.0)])
def test_sharpness_by_keyword_position_and_default(cls, default):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these is deprecated
        assert cls().sharpness == default
        assert cls(3.0) == cls(sharpness=3.0)
        assert cls(sharpness=3.0).param == 3.0  # the generic slot the kernels read
        assert repr(cls(3.0)) == f"{cls.__name__}(sharpness=3.0)"


@pytest.mark.parametrize("cls", [surrogate.Sigmoid, surrogate.ATan])
def test_alpha_keyword_is_deprecated_and_means_sharpness(cls):
    with pytest.warns(DeprecationWarning, match=rf"{cls.__name__}\(alpha=\.\.\.\) is deprecated: use sharpness="):
        old = cls(alpha=2.5)
    assert old == cls(sharpness=2.5)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    torch.testing.assert_close(old.derivative(x), cls(2.5).derivative(x))
    with pytest.warns(DeprecationWarning, match=rf"{cls.__name__}\.alpha is deprecated: use \.sharpness"):
        assert old.alpha == 2.5


@pytest.mark.parametrize("cls", [surrogate.Sigmoid, surrogate.ATan])
def test_both_names_at_once_is_an_error(cls):
    with pytest.raises(TypeError, match="give sharpness only"):
        cls(3.0, alpha=2.0)


@pytest.mark.parametrize("make, field", [(lambda: surrogate.Sigmoid(0.0), "sharpness"),
                                         (lambda: surrogate.ATan(sharpness=-1.0), "sharpness"),
                                         (lambda: surrogate.Rectangle(0.0), "width"),
                                         (lambda: surrogate.Triangle(-2.0), "width")])
def test_nonpositive_parameter_names_its_field(make, field):
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        make()


def test_pickle_round_trip_and_an_old_pickle():
    s = surrogate.ATan(1.5)
    assert pickle.loads(pickle.dumps(s)) == s
    # An object pickled before the rename kept its sharpness under "alpha".
    old = surrogate.Sigmoid.__new__(surrogate.Sigmoid)
    old.__setstate__({"alpha": 3.0})
    assert old == surrogate.Sigmoid(3.0) and surrogate.in_kernel(old)


def test_renamed_surrogates_still_run_in_the_kernels():
    assert surrogate.in_kernel(surrogate.Sigmoid(2.0)) and surrogate.in_kernel(surrogate.ATan())
