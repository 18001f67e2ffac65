"""Enums that equal upstream's members of the same name.

With the real `algoperf` package installed beside this one, a submission gets
upstream's `LossType`, `ForwardPassMode` and `ParameterType` — other classes than
ours. Plain enum members compare by identity, so `loss_type ==
spec.LossType.SOFTMAX_CROSS_ENTROPY` inside a submission, or `mode ==
ForwardPassMode.TRAIN` inside our workloads, would silently be False. Members of
these enums equal any enum member whose class has the same name and whose
member has the same name, and hash like upstream's members (by member name), so
either package's enums work in comparisons and as dict keys.
"""

from __future__ import annotations

import enum


class CrossPackageEnum(enum.Enum):
    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, enum.Enum):
            return type(other).__name__ == type(self).__name__ and other.name == self.name
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self._name_)  # what enum.Enum hashes, so upstream's members find ours in a dict and back
