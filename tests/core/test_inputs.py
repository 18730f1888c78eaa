"""numpy, dask and pandas input; out-of-sample predict and transform."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from spectral_core import SpectralClustering, embedding_width


@pytest.mark.parametrize("affinity", ["rbf", "nearest_neighbors"])
@pytest.mark.parametrize("landmarks", ["random", "kmeans"])
def test_numpy_and_dask_give_identical_labels(three_blobs, affinity, landmarks):
    X, _ = three_blobs
    params = dict(n_clusters=3, gamma=0.1, affinity=affinity, n_components=50,
                  landmarks=landmarks, random_state=7)
    from_numpy = SpectralClustering(**params).fit(X)
    from_dask = SpectralClustering(**params).fit(da.from_array(X, chunks=(128, 2)))
    assert isinstance(from_numpy.labels_, np.ndarray)
    assert isinstance(from_dask.labels_, da.Array)
    np.testing.assert_array_equal(from_numpy.labels_, from_dask.labels_.compute())
    np.testing.assert_allclose(from_numpy.eigenvalues_, from_dask.eigenvalues_, rtol=1e-10)


def test_same_random_state_same_labels_different_state_different_landmarks(three_blobs):
    X, _ = three_blobs
    a = SpectralClustering(n_clusters=3, gamma=0.1, random_state=1).fit(X)
    b = SpectralClustering(n_clusters=3, gamma=0.1, random_state=1).fit(X)
    c = SpectralClustering(n_clusters=3, gamma=0.1, random_state=2).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert not np.array_equal(a.landmark_indices_, c.landmark_indices_)


@pytest.mark.parametrize("affinity", ["rbf", "nearest_neighbors", "laplacian"])
def test_predict_on_training_rows_matches_labels(three_blobs, affinity):
    X, _ = three_blobs
    sc = SpectralClustering(n_clusters=3, gamma=0.1, affinity=affinity, random_state=0).fit(X)
    assert np.mean(sc.predict(X) == sc.labels_) >= 0.999
    U = sc.transform(X)
    assert U.shape == (X.shape[0], embedding_width(affinity, 3, sc.n_components))
    np.testing.assert_allclose(np.linalg.norm(U, axis=1), 1.0, rtol=1e-6)


def test_predict_new_samples_and_dask(three_blobs):
    from sklearn.datasets import make_blobs

    X, _ = three_blobs
    sc = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X)
    # New draws from the same three blobs get the labels of their blob.
    X_new, y_new = make_blobs(300, n_features=4, centers=3, cluster_std=0.6, random_state=3)
    assert adjusted_rand_score(y_new, sc.predict(X_new)) >= 0.99
    lazy = sc.predict(da.from_array(X_new, chunks=(100, 4)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), sc.predict(X_new))


def test_persist_embedding(three_blobs):
    X, _ = three_blobs
    sc = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0, persist_embedding=True)
    sc.fit(X)
    np.testing.assert_allclose(sc.embedding_, sc.transform(X), atol=1e-10)
    scd = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0, persist_embedding=True)
    scd.fit(da.from_array(X, chunks=(200, 4)))
    assert isinstance(scd.embedding_, da.Array)
    np.testing.assert_allclose(scd.embedding_.compute(), sc.embedding_, atol=1e-10)
    assert not hasattr(SpectralClustering(n_clusters=3, gamma=0.1).fit(X), "embedding_")


def test_float32_is_computed_in_float32(three_blobs):
    X, y = three_blobs
    X32 = X.astype(np.float32)
    sc = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0, persist_embedding=True)
    sc.fit(X32)
    assert sc.embedding_.dtype == np.float32
    assert sc.landmarks_.dtype == np.float32
    assert adjusted_rand_score(y, sc.labels_) >= 0.99


def test_pandas_dataframe_records_feature_names(three_blobs):
    X, _y = three_blobs
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    sc = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(df)
    assert list(sc.feature_names_in_) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(
        sc.labels_, SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X).labels_
    )
    with pytest.raises(ValueError, match="feature names of X passed to SpectralClustering"):
        sc.predict(df[["d", "c", "b", "a"]])


def test_dask_column_chunks_are_merged(three_blobs):
    X, _ = three_blobs
    lazy = da.from_array(X, chunks=(100, 2))  # two column chunks
    labels = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(lazy).labels_
    np.testing.assert_array_equal(
        labels.compute(),
        SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X).labels_,
    )


def test_precomputed_reads_only_landmark_columns(three_blobs):
    from sklearn.metrics.pairwise import rbf_kernel

    X, _y = three_blobs
    K = rbf_kernel(X, gamma=0.1)
    on_kernel = SpectralClustering(n_clusters=3, affinity="precomputed", random_state=0).fit(K)
    on_data = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X)
    np.testing.assert_array_equal(on_kernel.landmark_indices_, on_data.landmark_indices_)
    np.testing.assert_array_equal(on_kernel.labels_, on_data.labels_)
    np.testing.assert_allclose(on_kernel.eigenvalues_, on_data.eigenvalues_, rtol=1e-10)
    # Poisoning every non-landmark column does not change anything: they are never read.
    K_poisoned = K.copy()
    others = np.setdiff1d(np.arange(K.shape[0]), on_kernel.landmark_indices_)
    K_poisoned[:, others] = 123.0
    again = SpectralClustering(n_clusters=3, affinity="precomputed", random_state=0)
    np.testing.assert_array_equal(again.fit(K_poisoned).labels_, on_kernel.labels_)


def test_n_jobs_threads_give_the_same_labels(three_blobs):
    X, _ = three_blobs
    one = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0, n_jobs=1).fit(X)
    many = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0, n_jobs=-1).fit(X)
    np.testing.assert_array_equal(one.labels_, many.labels_)


def test_dask_input_under_a_distributed_client_runs_on_the_cluster(three_blobs):
    """With a live distributed Client, dask input is fitted on that cluster, same labels."""
    from distributed import Client, LocalCluster

    X, _ = three_blobs
    alone = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        sc = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0)
        sc.fit(da.from_array(X, chunks=(150, 4)))
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        labels = np.asarray(sc.labels_)
    np.testing.assert_array_equal(labels, alone.labels_)
    assert sum(executed.values()) >= 3 * 4  # three passes over four chunks, at least
    assert all(count > 0 for count in executed.values())  # both workers took part
