"""Look-ahead for batching and prefetch: the items after a given one, without a cost per
call that grows with the number of items."""

from types import SimpleNamespace

from vlm_bench.scheduling import RunOrder, Upcoming
from vlm_bench.types import Sample


def items(function, count, parent="mod", start=0):
    return [SimpleNamespace(parent=parent, originalname=function, nodeid=f"{function}[{i}]",
                            sample=Sample(id=f"{function}{i}", dataset="d", question="q", answer="a"))
            for i in range(start, start + count)]


def test_run_order_follows_the_run_within_one_test_function():
    run = items("test_a", 5) + items("test_b", 3)
    order = RunOrder(run, lambda it: it.sample)
    assert [s.id for s in order.after(run[0], 2)] == ["test_a1", "test_a2"]
    assert [s.id for s in order.after(run[3], 3)] == ["test_a4"]  # stops where test_b starts
    assert order.after(run[4], 2) == []
    assert [s.id for s in order.after(run[5], 5)] == ["test_b1", "test_b2"]
    assert order.after(run[0], 0) == []


def test_run_order_passes_over_reused_items_and_survives_another_order():
    run = items("test_a", 6)
    order = RunOrder(run, lambda it: it.sample, skip={"d/test_a1", "d/test_a2"})
    assert [s.id for s in order.after(run[0], 2)] == ["test_a3", "test_a4"]
    assert [s.id for s in order.after(run[4], 2)] == ["test_a5"]
    assert [s.id for s in order.after(run[0], 1)] == ["test_a3"]  # run again, out of order: found by index


def test_upcoming_stays_within_its_list():
    run = items("test_a", 4)
    entries = [(it.nodeid, ("test_a", "unit0" if i < 2 else "unit1"), it.sample) for i, it in enumerate(run)]
    upcoming = Upcoming(entries)
    assert [s.id for s in upcoming.after(run[0], 3)] == ["test_a1"]
    assert [s.id for s in upcoming.after(run[2], 3)] == ["test_a3"]
    assert upcoming.after(SimpleNamespace(nodeid="elsewhere"), 3) == []
