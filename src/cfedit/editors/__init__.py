"""Editors: the label / abduct / act / predict loop (:class:`Editor`), the ANCM, the baselines, the oracle.

Torch is imported by these modules; ``import cfedit.editors`` needs the ``edit`` extra.
"""

from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.editors.base import Editor, EditResult, default_device

__all__ = ["ANCM", "ANCMConfig", "EditResult", "Editor", "default_device"]
