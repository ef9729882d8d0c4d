"""Pairing a checkpoint's parameter names with an optimizer's parameters.

Paddle keys optimizer state by variable names built from the parameter's name (``linear_3.w_0`` +
``_mean_square_0``). A parameter's name is ``paddle.utils.unique_name``'s: the layer's name scope and a
per-scope counter (``linear_3``), then the parameter's suffix (``.w_0``). Within one model the names are
its structure; a model built the same way in a new process gets the same names, which is how
``paddle.optimizer.Optimizer.set_state_dict`` pairs state (by exact name). A model rebuilt in the same
process gets every scope's counter moved on by the layers built since (``linear_3`` -> ``linear_7``).

``match`` pairs by exact name when every saved name is one of ours (Paddle's rule), and otherwise finds,
for each name scope, the one counter shift that takes every saved parameter of that scope to one of ours
of the same suffix and shape. Never by the order in which state was created, which depends on which
parameter got a gradient first: a shift that does not exist, or more than one, is an error naming the
parameters, instead of a guess.
"""

from __future__ import annotations

import re

__all__ = ["match"]

_SCOPED = re.compile(r"^(?P<scope>[^.]+?)_(?P<n>\d+)(?P<suffix>\..+)?$")


def _split(name):
    """(scope, counter, suffix) of a unique_name-generated name, or None for a name without a counter."""
    m = _SCOPED.match(name)
    return None if m is None else (m["scope"], int(m["n"]), m["suffix"] or "")


def match(saved, ours):
    """A dict saved name -> our name for every name in ``saved``.

    ``saved`` and ``ours`` map parameter names to shapes (tuples). Raises ValueError naming the saved
    parameters that have no counterpart, or a name scope whose counterpart is ambiguous; whether each
    value fits its parameter is the caller's check."""
    if all(name in ours and tuple(ours[name]) == tuple(shape) for name, shape in saved.items()):
        return {name: name for name in saved}
    mapping, families = {}, {}
    for name, shape in saved.items():
        parts = _split(name)
        if parts is None:
            if name not in ours:
                raise ValueError(f"state_dict: state for parameters {[name]}, which match none of this "
                                 f"optimizer's parameters ({_some(ours)})")
            mapping[name] = name
            continue
        families.setdefault(parts[0], []).append((parts[1], parts[2], tuple(shape), name))
    by_scope = {}
    for name, shape in ours.items():
        parts = _split(name)
        if parts is not None:
            by_scope.setdefault(parts[0], {})[(parts[1], parts[2])] = (tuple(shape), name)
    for scope, members in families.items():
        mine = by_scope.get(scope, {})
        shift = _shift(scope, members, mine, ours)
        for n, suffix, _, name in members:
            mapping[name] = mine[(n + shift, suffix)][1]
    return mapping


def _shift(scope, members, mine, ours):
    """The counter shift taking every saved member of ``scope`` to one of ours with its suffix and shape: 0
    when that fits (exact names), else the only one that does. When none fits by shape, the one that fits
    by suffix alone (0 first), and the caller's shape check names the mismatch."""
    by_shape = _fits(members, mine, use_shape=True)
    if 0 in by_shape or len(by_shape) == 1:
        return 0 if 0 in by_shape else next(iter(by_shape))
    names = sorted(name for *_, name in members)
    shown = f"{names[:4]}{' ...' if len(names) > 4 else ''}"
    if len(by_shape) > 1:
        raise ValueError(f"state_dict: state for parameters {shown} matches this optimizer's '{scope}_<n>' "
                         f"parameters in {len(by_shape)} ways (counters moved by {sorted(by_shape)}): the "
                         f"checkpoint holds too few of them to tell which. Load it into a model whose "
                         f"parameters have the saved names (built in a new process, or under "
                         f"paddle.utils.unique_name.guard()), or rename its entries")
    by_name = _fits(members, mine, use_shape=False)
    if 0 in by_name or len(by_name) == 1:
        return 0 if 0 in by_name else next(iter(by_name))
    theirs = {k: v for k, v in ours.items() if k.startswith(scope + "_")}
    raise ValueError(f"state_dict: state for parameters {shown}, which match none of this optimizer's "
                     f"parameters by name, nor under other '{scope}_<n>' counters (the same suffixes and "
                     f"shapes); this optimizer has {_some(theirs or ours)}")


def _fits(members, mine, use_shape):
    shifts = None
    for n, suffix, shape, _ in members:
        fits = {m - n for (m, s), (their, _) in mine.items() if s == suffix and (not use_shape or their == shape)}
        shifts = fits if shifts is None else shifts & fits
    return shifts or set()


def _some(names):
    names = sorted(names)
    return ", ".join(repr(n) for n in names[:4]) + (" ..." if len(names) > 4 else "") if names else "none"
