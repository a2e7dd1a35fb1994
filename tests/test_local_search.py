"""Search as you type over rows held in memory: the narrowing kept between keys never
changes what a search finds — each answer equals a search of the same rows from scratch,
whatever was typed, erased, added or dropped before it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.local_search import KEPT, LocalRows, fold

NAMES = ["Müller", "Mueller", "Anna Müll", "ann", "Lull", "MÜLLER-Lüdenscheidt", "Schmidt", "smith", "Ännchen", "Ull Ann"]


def _rows() -> LocalRows[tuple[str, str]]:
    return LocalRows(lambda r: r[0], lambda r: r[1].split("|"), lambda r: (fold(r[1]), r[0]))


def _from_scratch(held: dict[str, str], text: str, limit: int) -> tuple[list[str], int]:
    """What a search must give: rows containing the text in a field, those where it
    starts one first, each group in name order; at most ``limit``, and how many matched."""
    wanted = fold(text.strip())
    ordered = sorted(held, key=lambda i: (fold(held[i]), i))
    fields = {i: [fold(f) for f in held[i].split("|")] for i in ordered}
    if not wanted:
        return ordered[:limit], len(ordered)
    prefix = [i for i in ordered if any(f.startswith(wanted) for f in fields[i])]
    inside = [i for i in ordered if i not in prefix and any(wanted in f for f in fields[i])]
    return (prefix + inside)[:limit], len(prefix) + len(inside)


_fields = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("|".join)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("type"), st.sampled_from("mülaneMÜ ")),
        st.tuples(st.just("erase"), st.integers(1, 3)),
        st.tuples(st.just("put"), st.integers(0, 30), _fields),
        st.tuples(st.just("drop"), st.integers(0, 30)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.integers(0, 30).map(str), _fields, max_size=25), _steps, st.sampled_from([1, 3, 200]))
def test_typing_erasing_and_changed_rows_find_what_a_fresh_search_finds(initial, steps, limit):
    rows, held, text = _rows(), dict(initial), ""
    for identity, fields in held.items():
        rows.put((identity, fields))
    for step in steps:
        if step[0] == "type":
            text += step[1]
        elif step[0] == "erase":
            text = text[: -step[1]]
        elif step[0] == "put":
            held[str(step[1])] = step[2]
            rows.put((str(step[1]), step[2]))
        else:
            assert rows.drop(str(step[1])) == (held.pop(str(step[1]), None) is not None)
        found = rows.search(text, limit)
        assert ([r[0] for r in found.rows], found.total) == _from_scratch(held, text, limit), text


def test_a_kept_text_narrows_the_next_search_and_the_oldest_goes_first():
    rows = _rows()
    for n in range(100):
        rows.put((str(n), f"Name {n}"))
    assert rows.search("name 1", 200).total == 11  # 1, 10–19
    looked_at = []
    keys = rows._keys  # each identity a search looks up: only the kept text's rows
    rows._keys = type("Counting", (dict,), {"__getitem__": lambda self, k: looked_at.append(k) or dict.__getitem__(self, k)})(keys)
    assert [r[0] for r in rows.search("name 12", 200).rows] == ["12"]
    assert set(looked_at) <= {str(n) for n in (1, *range(10, 20))}
    for n in range(KEPT + 1):
        rows.search(f"x{n}", 200)
    assert "name 1" not in rows._matched and len(rows._matched) == KEPT
