"""Case numbers are unique and consecutive per grid and local day, also under concurrent merges."""

import asyncio
from datetime import UTC, datetime

from sync.case_numbers import allocate_case_numbers
from tests.support.stack import Stack


async def test_numbers_are_consecutive_per_grid_and_local_day(stack: Stack) -> None:
    # 16:30 UTC is already the next day in Shanghai.
    late = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
    async with stack.runtime.sessions() as session, session.begin():
        first = await allocate_case_numbers(session, "ZR01", now=late)
        batch = await allocate_case_numbers(session, "ZR01", 3, now=late)
        other = await allocate_case_numbers(session, "ZR02", now=late)
        unassigned = await allocate_case_numbers(session, None, now=late)
    assert first == ["ZR01-20261126-0001"]
    assert batch == ["ZR01-20261126-0002", "ZR01-20261126-0003", "ZR01-20261126-0004"]
    assert other == ["ZR02-20261126-0001"]
    assert unassigned == ["UNASSIGNED-20261126-0001"]


async def test_concurrent_transactions_never_share_a_number(stack: Stack) -> None:
    async def allocate() -> list[str]:
        async with stack.runtime.sessions() as session, session.begin():
            return await allocate_case_numbers(session, "ZR03", 2)

    batches = await asyncio.gather(*(allocate() for _ in range(12)))
    numbers = [number for batch in batches for number in batch]
    assert len(set(numbers)) == 24
    assert sorted(int(n.rsplit("-", 1)[1]) for n in numbers) == list(range(1, 25))
