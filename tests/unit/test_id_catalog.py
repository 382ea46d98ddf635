"""How many copies of a database CouchDB keeps, read from its info: the alerts catalog is exact only
for a database kept in one copy (``sync.id_catalog``)."""

import pytest

from sync.id_catalog import copies_of

pytestmark = pytest.mark.unit

COUCHDB_3_INFO = {
    "db_name": "gp_alert_zr01",
    "update_seq": "12-g1AAAACbeJzLYWBgYMpgTmHgzcvPy09JdcjLz8gvLskBCScyJNX___8_K5EBh3o2BAC3xiKd",
    "doc_count": 12,
    "cluster": {"q": 2, "n": 3, "w": 2, "r": 2},
}


def test_a_clustered_database_says_how_many_copies_it_keeps() -> None:
    assert copies_of(COUCHDB_3_INFO) == 3
    assert copies_of({**COUCHDB_3_INFO, "cluster": {"q": 8, "n": 1, "w": 1, "r": 1}}) == 1


@pytest.mark.parametrize(
    "info",
    [
        {"db_name": "gp_alert_zr01", "update_seq": 12, "doc_count": 12},  # pouchdb-server
        {**COUCHDB_3_INFO, "cluster": None},
        {**COUCHDB_3_INFO, "cluster": {"n": "3"}},
        {**COUCHDB_3_INFO, "cluster": {"n": True}},
        {**COUCHDB_3_INFO, "cluster": {"n": 0}},
    ],
)
def test_a_database_that_says_nothing_usable_is_one_copy(info: dict[str, object]) -> None:
    assert copies_of(info) == 1
