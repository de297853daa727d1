"""MP-BADNet reference implementation: the executable reading of ``spec/``.

Pure Python (``int`` and ``list``), one module per spec chapter. Not optimised and not
side-channel safe: it is written to be read beside the spec.
"""
