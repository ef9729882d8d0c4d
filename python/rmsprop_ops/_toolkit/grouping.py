"""Parameters -> groups -> launches, with no framework and no arrays.

An optimizer takes a list of parameters, or a list of group dicts ``{"params": [...], **options}``
(torch, Paddle and MindSpore all spell groups this way). :func:`split_groups` turns either form into
named records: one :class:`Group` per dict (the options it set, by canonical name) and one
:class:`Member` per parameter, numbered in the caller's order, each with the name errors use for it
(``params[3]``, or ``params[1][0]`` with several groups). :func:`plan_launches` then gathers members
whose hyper-parameter keys are equal into :class:`Launch` records: one multi-tensor core call each, in
order of first appearance, members in increasing order - the same inputs always give the same plan.

Example:
    >>> from rmsprop_ops._toolkit.grouping import plan_launches
    >>> [(l.key, l.members) for l in plan_launches(["a", "b", "a", "c", "b"])]
    [('a', (0, 2)), ('b', (1, 4)), ('c', (3,))]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["Member", "Group", "Launch", "split_groups", "plan_launches", "without_1d_decay"]


@dataclass(frozen=True)
class Member:
    """One parameter: its position in the flat list (``index``), its group and place in it, its name."""

    index: int
    group: int
    position: int
    name: str
    param: object


@dataclass(frozen=True)
class Group:
    """One parameter group: the options it sets (canonical names, ``params`` excluded) and its members'
    flat indices."""

    index: int
    options: Mapping
    members: tuple


@dataclass(frozen=True)
class Launch:
    """Members (flat indices, increasing) that share one hyper-parameter ``key``: one core call."""

    key: Hashable
    members: tuple

    def covers(self, n: int) -> bool:
        """Whether this launch is every one of ``n`` parameters in order (no gather needed)."""
        return self.members == tuple(range(n))


def _is_single_tensor(obj) -> bool:
    """A dict or one tensor (anything with a shape and a dtype, or an array protocol), not a list of them."""
    return (isinstance(obj, Mapping) or hasattr(obj, "__dlpack__") or hasattr(obj, "__array_interface__")
            or (hasattr(obj, "shape") and hasattr(obj, "dtype")))


def split_groups(params, *, accepted: Iterable[str], canonical: Callable[[str], str] | None = None,
                 name: str = "params") -> tuple[tuple[Group, ...], tuple[Member, ...]]:
    """Split ``params`` (a list of parameters, or of group dicts) into groups and members.

    Args:
        params: an iterable of parameters, or of dicts with a ``"params"`` iterable and options.
        accepted: the option names a group may set (canonical names).
        canonical: maps a key a group used to its canonical name (aliases such as ``lr``), or raises
            TypeError; the default accepts only ``accepted``.
        name: how errors call the argument.

    Raises:
        TypeError: ``params`` is a single tensor or dict, a group is not a dict with ``"params"``.
        ValueError: no parameters at all, unknown option keys, an option given twice (name and alias).
    """
    accepted = frozenset(accepted)
    if _is_single_tensor(params) or isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"{name}: expected a list of parameters or of group dicts, got {type(params).__name__}")
    entries = list(params)
    if not entries:
        raise ValueError(f"{name}: expected at least one parameter, got an empty list")
    grouped = isinstance(entries[0], Mapping)
    raw_groups = entries if grouped else [{"params": entries}]
    groups, members = [], []
    for gi, raw in enumerate(raw_groups):
        if not isinstance(raw, Mapping) or "params" not in raw:
            raise TypeError(f"{name}[{gi}]: expected a dict with a 'params' list (every entry a group once the "
                            f"first one is), got {type(raw).__name__}")
        options = {}
        for key, value in raw.items():
            if key == "params":
                continue
            if not isinstance(key, str):
                raise TypeError(f"{name}[{gi}]: expected str option keys, got {key!r}")
            try:
                canon = canonical(key) if canonical is not None else key
            except TypeError as e:
                raise ValueError(f"{name}[{gi}]: unknown group keys [{key!r}]: {e}") from None
            if canon not in accepted:
                raise ValueError(f"{name}[{gi}]: unknown group keys [{key!r}]; expected some of {sorted(accepted)}")
            if canon in options:
                raise ValueError(f"{name}[{gi}]: {canon} given twice (as {canon} and an alias)")
            options[canon] = value
        group_params = raw["params"]
        if _is_single_tensor(group_params) or not isinstance(group_params, Iterable):
            raise TypeError(f"{name}[{gi}]['params']: expected a list of parameters, got "
                            f"{type(group_params).__name__}")
        indices = []
        for pi, p in enumerate(group_params):
            index = len(members)
            label = f"{name}[{gi}][{pi}]" if len(raw_groups) > 1 else f"{name}[{pi}]"
            members.append(Member(index=index, group=gi, position=pi, name=label, param=p))
            indices.append(index)
        groups.append(Group(index=gi, options=MappingProxyType(options), members=tuple(indices)))
    if not members:
        raise ValueError(f"{name}: expected at least one parameter, got groups with none")
    return tuple(groups), tuple(members)


def plan_launches(keys: Iterable[Hashable]) -> tuple[Launch, ...]:
    """One :class:`Launch` per distinct key (``keys[i]`` belongs to member ``i``), in order of first
    appearance; equal keys share a launch."""
    order: dict = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    return tuple(Launch(key=key, members=tuple(idx)) for key, idx in order.items())


def without_1d_decay(params) -> list:
    """A flat list of parameters as groups of consecutive runs, the runs of 1-D (and 0-D) parameters with
    ``weight_decay`` 0: timm's, PaddleClas' and mindcv's exemption of biases and norm scales. Order is
    kept, so gradients given in the parameters' order still line up; a list of groups is returned as
    given (the caller chose its groups)."""
    params = list(params)
    if not params or isinstance(params[0], dict):
        return params
    runs: list = []
    for p in params:
        flat = len(getattr(p, "shape", ())) <= 1
        if runs and runs[-1][0] == flat:
            runs[-1][1].append(p)
        else:
            runs.append((flat, [p]))
    return [{"params": ps, "weight_decay": 0.0} if flat else {"params": ps} for flat, ps in runs]
