"""``_local`` documents (checkpoints, kept per user in SQL) are bounded: a body of at most 64 KiB,
at most 1,000 of them per user and database. PouchDB's own are 1-2 KB, one per replication."""

from collections.abc import AsyncIterator

import pytest

from server.db.models import LocalDoc
from server.gateway._local import LOCAL_DOC_MAX_BYTES, LOCAL_DOCS_PER_DB
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DB = "/sync/field"


async def test_a_local_body_over_64_kib_is_a_413_and_not_stored(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        fits = {"history": "x" * (LOCAL_DOC_MAX_BYTES - 100)}
        assert (await client.put(f"{DB}/_local/fits", json=fits)).status_code == 201
        too_big = await client.put(f"{DB}/_local/junk", json={"blob": "x" * (30 * 1024 * 1024)})
        assert too_big.status_code == 413
        assert too_big.json()["error"] == "too_large"
        assert "64 KB" in too_big.json()["reason"] and " / " in too_big.json()["reason"]
        just_over = await client.put(f"{DB}/_local/junk", json={"blob": "x" * LOCAL_DOC_MAX_BYTES})
        assert just_over.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length to go by
            yield b'{"blob": "'
            for _ in range(16):
                yield b"x" * 8192
            yield b'"}'

        streamed = await client.put(
            f"{DB}/_local/junk", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert (await client.get(f"{DB}/_local/junk")).status_code == 404
        # a checkpoint over the limit is no update either
        over = await client.put(f"{DB}/_local/fits", json={"blob": "x" * (LOCAL_DOC_MAX_BYTES + 1)})
        assert over.status_code == 413
        assert (await client.get(f"{DB}/_local/fits")).json()["_rev"] == "0-1"


async def test_at_most_a_thousand_local_docs_per_user_and_database(stack: Stack) -> None:
    async with stack.runtime.sessions() as session, session.begin():
        session.add_all(
            LocalDoc(
                owner="vol1",
                db=stack.settings.gateway.virtual_db,
                doc_id=f"_local/old-{i}",
                generation=1,
                body={"n": i},
            )
            for i in range(LOCAL_DOCS_PER_DB - 1)
        )
    async with stack.http("vol1") as client:
        assert (await client.put(f"{DB}/_local/last-one", json={"last_seq": "1"})).status_code == 201
        refused = await client.put(f"{DB}/_local/one-more", json={"last_seq": "1"})
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
        assert str(LOCAL_DOCS_PER_DB) in refused.json()["reason"]
        assert (await client.get(f"{DB}/_local/one-more")).status_code == 404
        # updating a checkpoint that exists goes on as before
        updated = await client.put(f"{DB}/_local/last-one", json={"_rev": "0-1", "last_seq": "2"})
        assert updated.json()["rev"] == "0-2"
        assert (await client.delete(f"{DB}/_local/old-0", params={"rev": "0-1"})).status_code == 200
        assert (await client.put(f"{DB}/_local/one-more", json={"last_seq": "1"})).status_code == 201
    async with stack.http("vol1b") as colleague:
        assert (await colleague.put(f"{DB}/_local/theirs", json={"last_seq": "1"})).status_code == 201


async def test_local_ids_and_revisions_that_do_not_fit_sql_are_no_500(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        assert (await client.put(f"{DB}/_local/cp", json={"last_seq": "1"})).status_code == 201
        huge_rev = await client.put(f"{DB}/_local/cp", json={"_rev": "0-" + "9" * 30, "last_seq": "2"})
        assert huge_rev.status_code == 409
        odd_digits = await client.put(f"{DB}/_local/cp", json={"_rev": "0-²", "last_seq": "2"})
        assert odd_digits.status_code == 409
        assert (await client.delete(f"{DB}/_local/cp", params={"rev": "0-" + "9" * 30})).status_code == 409
        long_id = await client.put(f"{DB}/_local/{'x' * 400}", json={"last_seq": "1"})
        assert long_id.status_code == 400
        assert long_id.json()["error"] == "bad_request"
