"""The memory budget that photo decoding shares: shares fit or wait, in order, give up after
their time, and a share given up or cancelled leaves nothing held."""

from __future__ import annotations

import asyncio

import pytest

from backend.budget import MemoryBudget


def run(coro):
    return asyncio.run(coro)


def test_shares_that_fit_are_taken_at_once_and_others_wait_for_a_release():
    async def main():
        budget = MemoryBudget(100)
        assert await budget.acquire(60, 1) == 60
        second = asyncio.create_task(budget.acquire(60, 5))
        await asyncio.sleep(0.05)
        assert not second.done() and budget.in_use == 60 and budget.waiting == 1
        budget.release(60)
        assert await second == 60 and budget.in_use == 60
        budget.release(60)
        return budget

    budget = run(main())
    assert budget.in_use == 0 and budget.peak == 60


def test_a_share_larger_than_the_budget_waits_for_all_of_it():
    async def main():
        budget = MemoryBudget(100)
        await budget.acquire(10, 1)
        huge = asyncio.create_task(budget.acquire(10_000, 5))
        await asyncio.sleep(0.05)
        assert not huge.done()
        budget.release(10)
        assert await huge == 100 and budget.in_use == 100   # clamped to the whole budget
        budget.release(100)

    run(main())


def test_waiters_are_served_in_order_so_a_large_share_is_not_starved():
    async def main():
        budget = MemoryBudget(100)
        await budget.acquire(50, 1)
        order = []

        async def want(name, cost):
            got = await budget.acquire(cost, 5)
            order.append(name)
            return got

        big = asyncio.create_task(want("big", 90))
        await asyncio.sleep(0.01)
        small = asyncio.create_task(want("small", 20))   # would fit now, but the big one is first
        await asyncio.sleep(0.05)
        assert order == []
        budget.release(50)
        await big
        assert order == ["big"] and not small.done()
        budget.release(90)
        await small
        assert order == ["big", "small"]

    run(main())


def test_a_wait_that_times_out_or_is_cancelled_holds_nothing_and_lets_the_next_go():
    async def main():
        budget = MemoryBudget(100)
        await budget.acquire(100, 1)
        with pytest.raises(TimeoutError):
            await budget.acquire(50, 0.05)
        cancelled = asyncio.create_task(budget.acquire(80, 5))
        behind = asyncio.create_task(budget.acquire(20, 5))
        await asyncio.sleep(0.02)
        cancelled.cancel()
        budget.release(100)
        assert await behind == 20
        assert budget.in_use == 20 and budget.waiting == 0

    run(main())
