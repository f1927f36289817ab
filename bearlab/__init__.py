__version__ = "0.1.0"

# Before any module imports fastai: a broken mix of fastai, fastcore and torch is named in one sentence (bearlab.versions).
from .versions import check_versions as _check_versions
_check_versions()
