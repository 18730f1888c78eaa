"""SpectralEnsemble: the consensus against its definition, known labels, inputs and refusals."""

import dask.array as da
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from spectral_core import (
    ConsensusKMeans,
    SpectralClustering,
    SpectralEnsemble,
    cluster_cooccurrence,
    consensus_embedding,
)
from spectral_core._ensemble import _choose_consensus, _consensus_vectors, _nmi


def _one_hot(labels, sizes):
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    B = np.zeros((labels.shape[0], int(np.sum(sizes))))
    for j in range(labels.shape[1]):
        B[np.arange(labels.shape[0]), offsets[j] + labels[:, j]] = 1
    return B


def _random_members(seed, n=300, sizes=(4, 6, 5)):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, s, n) for s in sizes]), np.array(sizes)


@pytest.mark.parametrize("seed", range(3))
def test_cooccurrence_is_the_bipartite_graphs_gram(seed):
    labels, sizes = _random_members(seed)
    B = _one_hot(labels, sizes)
    np.testing.assert_array_equal(cluster_cooccurrence(labels, sizes), B.T @ B)
    chunked = da.from_array(labels, chunks=(70, 1))  # rows split across blocks too
    np.testing.assert_array_equal(cluster_cooccurrence(chunked, sizes), B.T @ B)


@pytest.mark.parametrize("seed", range(3))
def test_the_embedding_spans_the_normalized_bipartite_graphs_top_singular_vectors(seed):
    # Reference: the dense SVD of H = B D^{-1/2} / sqrt(M); a row's embedding is the row of
    # U_k Σ_k (the same directions, each column scaled by a constant), normalized.
    labels, sizes = _random_members(seed)
    labels[:100, :] = [0, 0, 0]  # some structure, so the leading values are distinct
    labels[100:180, :] = [1, 1, 1]
    B = _one_hot(labels, sizes)
    M, k = labels.shape[1], 4
    H = B / np.sqrt(B.sum(axis=0)) / np.sqrt(M)
    U, sigma, _ = np.linalg.svd(H, full_matrices=False)
    expected = U[:, :k] * sigma[:k]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    vectors, values = _consensus_vectors(cluster_cooccurrence(labels, sizes), M, k)
    got = consensus_embedding(labels, sizes, vectors)
    np.testing.assert_allclose(values, sigma[:k] ** 2, rtol=1e-10)
    signs = np.sign(np.sum(got * expected, axis=0))
    np.testing.assert_allclose(got * signs, expected, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_nmi_is_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 7, 500), rng.integers(0, 3, 500)
    b[:200] = a[:200] % 3  # partly dependent
    assert _nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b), rel=1e-12)
    assert _nmi(a, a) == pytest.approx(1.0, rel=1e-12)
    assert _nmi(np.zeros(9, int), np.zeros(9, int)) == normalized_mutual_info_score(
        np.zeros(9, int), np.zeros(9, int))
    assert _nmi(np.zeros(9, int), np.arange(9) % 2) == 0.0


def test_the_kept_partition_is_the_candidate_that_agrees_most_with_the_members():
    labels, sizes = _random_members(1)
    labels[:150] = labels[:150] % 2  # members agree on a coarse split of the first rows
    vectors, _ = _consensus_vectors(cluster_cooccurrence(labels, sizes), 3, 3, 5)
    model, width, agreement = _choose_consensus(labels, sizes, vectors, 3, 4, seed=0)
    # Every candidate, rebuilt the same way: none agrees more than the kept one.
    from sklearn.cluster import KMeans

    rng = np.random.RandomState(0)
    scores = []
    for w in range(3, 6):
        U = consensus_embedding(labels, sizes, vectors[:, :w])
        for start in rng.randint(np.iinfo(np.int32).max, size=4):
            found = KMeans(3, n_init=1, random_state=int(start)).fit_predict(U)
            scores.append(np.mean([normalized_mutual_info_score(found, labels[:, j])
                                   for j in range(3)]))
    assert agreement == pytest.approx(max(scores), rel=1e-12)
    assert model.cluster_centers_.shape == (3, width)


def test_an_empty_member_cluster_is_left_out():
    labels, sizes = _random_members(0)
    sizes = sizes.copy()
    sizes[1] += 1  # member 1 declares a 7th cluster no row is in
    vectors, _ = _consensus_vectors(cluster_cooccurrence(labels, sizes), 3, 3)
    assert np.isfinite(vectors).all()
    np.testing.assert_array_equal(vectors[4 + 6], 0.0)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(1500, centers=5, cluster_std=0.6, random_state=3)


def _member(m=60):
    return SpectralClustering(affinity="nearest_neighbors", n_neighbors=5, landmarks="kmeans",
                              n_components=m)


@pytest.mark.parametrize("member_n_clusters", ["auto", None, 8, (5, 9)])
def test_blobs_are_recovered_exactly(blobs, member_n_clusters):
    X, y = blobs
    ens = SpectralEnsemble(5, estimator=_member(), n_members=4,
                           member_n_clusters=member_n_clusters, n_init=2, random_state=0).fit(X)
    assert adjusted_rand_score(y, ens.labels_) == 1.0
    assert ens.member_labels_.shape == (1500, 4)
    low, high = {"auto": (10, 30), None: (5, 5), 8: (8, 8), (5, 9): (5, 9)}[member_n_clusters]
    assert all(low <= m.n_clusters <= high for m in ens.members_)
    np.testing.assert_array_equal(ens.predict(X), ens.labels_)
    # What the consensus maximizes, recomputed with scikit-learn on every row (1,500 rows:
    # all of them are the k-means' sample).
    agreement = np.mean([normalized_mutual_info_score(ens.labels_, ens.member_labels_[:, j])
                         for j in range(4)])
    assert ens.member_agreement_ == pytest.approx(agreement, rel=1e-12)


def test_members_have_their_own_seeds_and_the_template_is_untouched(blobs):
    X, _ = blobs
    template = _member()
    ens = SpectralEnsemble(5, estimator=template, n_members=3, n_init=2, random_state=7).fit(X)
    seeds = [m.random_state for m in ens.members_]
    assert len(set(seeds)) == 3
    assert template.random_state is None and not hasattr(template, "labels_")
    again = SpectralEnsemble(5, estimator=template, n_members=3, n_init=2, random_state=7).fit(X)
    np.testing.assert_array_equal(again.labels_, ens.labels_)
    assert clone(ens).get_params()["n_members"] == 3


def test_the_consensus_overrules_a_minority_of_members():
    # Seven members see the truth, three merge two of the four groups and split another: the
    # consensus is the truth.
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 50)
    wrong = np.where(truth == 1, 0, truth)
    wrong = np.where((truth == 3) & (np.arange(200) % 2 == 0), 1, wrong)
    labels = np.column_stack([truth] * 7 + [wrong] * 3)
    perm = rng.permutation(200)
    labels, truth = labels[perm], truth[perm]
    sizes = np.full(10, 4)
    vectors, _ = _consensus_vectors(cluster_cooccurrence(labels, sizes), 10, 4)
    U = consensus_embedding(labels, sizes, vectors)
    from sklearn.cluster import KMeans

    found = KMeans(4, n_init=10, random_state=0).fit_predict(U)
    assert adjusted_rand_score(truth, found) == 1.0


def test_dask_input_gives_the_numpy_labels(blobs):
    X, _ = blobs
    ens = SpectralEnsemble(5, estimator=_member(), n_members=3, n_init=2, random_state=1)
    expected = clone(ens).fit(X).labels_
    got = ens.fit(da.from_array(X, chunks=(500, 2)))
    assert isinstance(got.labels_, da.Array)
    np.testing.assert_array_equal(got.labels_.compute(), expected)


def test_the_default_members_are_the_recommended_configuration(blobs):
    X, y = blobs
    ens = SpectralEnsemble(5, n_members=2, n_init=2, random_state=0).fit(X)
    member = ens.members_[0]
    assert (member.affinity, member.n_neighbors, member.landmarks, member.n_components) == (
        "nearest_neighbors", 5, "kmeans", 500)
    assert member.kmeans_params == {"n_init": 1, "max_iter": 5}
    assert all(10 <= m.n_clusters <= 30 for m in ens.members_)
    assert adjusted_rand_score(y, ens.labels_) == 1.0


@pytest.mark.parametrize("params, error, words", [
    ({"n_members": 0}, ValueError, "'n_members' parameter of SpectralEnsemble must be an int >= 1"),
    ({"n_members": 2.5}, TypeError, "'n_members' parameter of SpectralEnsemble must be an int"),
    ({"n_clusters": 0}, ValueError, "'n_clusters' parameter of SpectralEnsemble"),
    ({"n_init": 0}, ValueError, "'n_init' parameter of SpectralEnsemble"),
    ({"member_n_clusters": (9, 5)}, ValueError, "low ≤ high"),
    ({"member_n_clusters": "many"}, TypeError, "None, an int or a pair of ints"),
    ({"member_n_clusters": 2, "n_members": 2}, ValueError, "cannot make 5 consensus clusters"),
    ({"member_n_clusters": 61}, ValueError, "n_components=60 landmarks"),
    ({"member_n_clusters": (10, 61)}, ValueError, "up to 61 clusters per member"),
    ({"estimator": object()}, TypeError, "'estimator' parameter of SpectralEnsemble"),
])
def test_bad_parameters_are_refused_before_any_member_is_fitted(params, error, words):
    X = np.full((50, 2), np.nan)  # a member's fit would refuse this data
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        SpectralEnsemble(**{"n_clusters": 5, "estimator": _member(), **params}).fit(X)


# ---------------------------------------------------------------------------------------------
# assign_labels='consensus': ConsensusKMeans on one fit's wide embedding


def _knn(**kw):
    return SpectralClustering(5, affinity="nearest_neighbors", n_neighbors=5, landmarks="kmeans",
                              n_components=60, random_state=0, **kw)


def test_the_consensus_assignment_recovers_blobs_on_a_wide_embedding(blobs):
    X, y = blobs
    plain = _knn().fit(X)
    sc = _knn(assign_labels="consensus", persist_embedding=True).fit(X)
    assert adjusted_rand_score(y, sc.labels_) == 1.0
    # 6k + 2 eigenvectors (k = 5), where k-means reads k + 2.
    assert sc.embedding_.shape == (1500, 32) and sc.eigenvalues_.shape == (32,)
    assert plain.eigenvalues_.shape == (7,)
    np.testing.assert_allclose(sc.eigenvalues_[:7], plain.eigenvalues_, rtol=1e-9)
    # The spectrum and the suggestion read from it are the plain fit's.
    np.testing.assert_allclose(sc.spectrum_, plain.spectrum_, rtol=1e-9, atol=1e-12)
    said, plain_said = sc.n_clusters_suggestion_, plain.n_clusters_suggestion_
    assert (said.n_clusters, said.clear, said.low, said.high) == \
        (plain_said.n_clusters, plain_said.clear, plain_said.low, plain_said.high)
    np.testing.assert_allclose(said.curve, plain_said.curve, rtol=1e-6, atol=1e-12)
    model = sc.assign_labels_
    assert isinstance(model, ConsensusKMeans) and len(model.members_) == 20
    assert model.n_init == ConsensusKMeans().n_init  # n_init='auto': the consensus's own
    assert _knn(assign_labels="consensus", n_init=3).fit(X).assign_labels_.n_init == 3
    # Members draw k-6k clusters and read k_i + 2 of the 32 columns.
    assert all(5 <= km.n_clusters <= 30 and cols == km.n_clusters + 2
               for km, cols in model.members_)
    np.testing.assert_array_equal(sc.predict(X), sc.labels_)



def test_a_consensus_kmeans_instance_gets_the_wide_embedding_too(blobs):
    # assign_labels=ConsensusKMeans(...) with settings of one's own (here fewer members)
    # reads the 6k + 2 columns 'consensus' does, not k-means' k + 2, which would cap every
    # member at k clusters.
    X, y = blobs
    sc = _knn(assign_labels=ConsensusKMeans(n_members=4, member_n_clusters=(20, 30)),
              persist_embedding=True).fit(X)
    assert sc.embedding_.shape == (1500, 32)
    model = sc.assign_labels_
    assert model.n_clusters == 5 and len(model.members_) == 4
    assert all(20 <= km.n_clusters <= 30 and cols == km.n_clusters + 2
               for km, cols in model.members_)
    assert adjusted_rand_score(y, sc.labels_) == 1.0

def test_consensus_kmeans_fits_a_sample_and_labels_every_row():
    rng = np.random.default_rng(0)
    U = np.repeat(8 * np.eye(8)[:3], 400, axis=0) + rng.normal(size=(1200, 8))
    y = np.repeat(np.arange(3), 400)
    model = ConsensusKMeans(3, max_fit_rows=300, random_state=0).fit(U)
    assert adjusted_rand_score(y, model.labels_) == 1.0
    # 8 columns: 8 - 2 columns' worth caps k-6k at 3-6 clusters, each reading k_i + 2 columns.
    sizes = [km.n_clusters for km, _ in model.members_]
    assert min(sizes) >= 3 and max(sizes) <= 6 and len(set(sizes)) > 1
    assert all(cols == km.n_clusters + 2 for km, cols in model.members_)
    assert ConsensusKMeans(3, max_fit_rows=300, random_state=0).fit(U).member_agreement_ \
        == model.member_agreement_  # the same seed, the same consensus
    with pytest.raises(ValueError, match="fitted on an embedding of 8 columns; got shape"):
        model.predict(np.hstack([U, U]))  # wider: its first 8 columns would pass unnoticed


@pytest.mark.parametrize(("params", "error", "words"), [
    ({"n_clusters": 9}, ValueError, "needs at least 9 rows and 9 columns"),
    ({"n_members": 0}, ValueError, "'n_members' parameter of ConsensusKMeans must be an int >= 1"),
    ({"extra_columns": -1}, ValueError, "'extra_columns' parameter of ConsensusKMeans"),
    ({"max_fit_rows": 2.5}, TypeError, "'max_fit_rows' parameter"),
    ({"member_n_clusters": "many"}, TypeError, "'member_n_clusters' parameter of ConsensusK"),
    ({"member_n_clusters": (4, 2)}, ValueError, r"must be ≥ 1 \(and low ≤ high\)"),
    ({"member_n_clusters": 9}, ValueError, "cannot fit members of 9 clusters on 8 rows"),
    ({"member_n_clusters": 1, "n_members": 2}, ValueError, "cannot make 3 consensus clusters"),
])
def test_consensus_kmeans_refuses_bad_parameters(params, error, words):
    with pytest.raises(error, match=words):
        ConsensusKMeans(**{"n_clusters": 3, **params}).fit(np.eye(8))


def test_consensus_kmeans_members_take_the_clusters_asked_for():
    # An int gives every member that many clusters; a pair draws from it, past the 'auto'
    # cap of the columns (a member then reads all the columns there are).
    rng = np.random.default_rng(1)
    U = np.repeat(8 * np.eye(8)[:3], 200, axis=0) + rng.normal(size=(600, 8))
    y = np.repeat(np.arange(3), 200)
    fixed = ConsensusKMeans(3, n_members=5, member_n_clusters=4, n_init=2, random_state=0).fit(U)
    assert [km.n_clusters for km, _ in fixed.members_] == [4] * 5
    wide = ConsensusKMeans(3, n_members=6, member_n_clusters=(7, 12), n_init=2,
                           random_state=0).fit(U)
    assert all(7 <= km.n_clusters <= 12 and cols == min(km.n_clusters + 2, 8)
               for km, cols in wide.members_)
    assert adjusted_rand_score(y, fixed.labels_) == adjusted_rand_score(y, wide.labels_) == 1.0


def test_kmeans_params_are_refused_with_the_consensus_assignment(blobs):
    from spectral_core.params import ParameterValueError

    with pytest.raises(ParameterValueError, match="kmeans_params"):
        _knn(assign_labels="consensus", kmeans_params={"n_init": 3}).fit(blobs[0])
