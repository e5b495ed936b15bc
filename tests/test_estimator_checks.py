"""The scikit-learn estimator contract, checked by scikit-learn's own suite."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from shardlearn import LinearRegression, LinearSVC, LogisticRegression

# The same expected failures scikit-learn declares for its own LinearSVC: with the
# default alpha the squared-hinge problem is nearly flat, so weighted and repeated
# fits agree only to about 1e-4, not the check's 1e-7 (measured; tol=1e-12 does not
# close it). Every other check runs and passes, for every estimator.
_SW = "sample_weight is not equivalent to removing/repeating samples."
EXPECTED = {
    "LinearSVC": {
        "check_sample_weight_equivalence_on_dense_data": _SW,
        "check_sample_weight_equivalence_on_sparse_data": _SW,
    }
}


@parametrize_with_checks(
    [
        LinearRegression(),
        LogisticRegression(),
        LinearSVC(),
        LogisticRegression(solver="gd"),
        LogisticRegression(solver="sgd", random_state=0),
    ],
    expected_failed_checks=lambda est: EXPECTED.get(type(est).__name__, {}),
)
def test_sklearn_contract(estimator, check):
    check(estimator)
