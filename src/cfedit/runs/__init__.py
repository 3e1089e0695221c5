"""A trained run: the editor, the world it belongs to (or none) and where its bounds come from.

:class:`Run` is what ``cfedit edit``, ``cfedit serve``, ``cfedit evaluate`` and ``--certify`` load: a run
folder written by ``cfedit train`` / ``cfedit demo``, or a shipped editor named ``pretrained:NAME``
(:mod:`cfedit.runs.pretrained`).
"""

from cfedit.runs.pretrained import list_pretrained, pretrained_folder
from cfedit.runs.run import PRETRAINED_PREFIX, QueryBounds, Run, check_belongs, matching_world

__all__ = ["PRETRAINED_PREFIX", "QueryBounds", "Run", "check_belongs", "list_pretrained", "matching_world",
           "pretrained_folder"]
